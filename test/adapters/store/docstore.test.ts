import { join } from 'node:path';
import { MemoryDocStore } from '../../../shared/adapters/store/memory.js';
import { OverlayDocStore } from '../../../shared/adapters/store/overlay.js';
import { SqliteDocStore } from '../../../shared/adapters/store/sqlite.js';
import { docStoreContract } from '../../helpers/docstore-contract.js';
import { tempDir } from '../../helpers/tmp.js';

docStoreContract('memory', async (clock) => {
  const store = new MemoryDocStore({ clock });
  return { store, done: () => store.close() };
});

// The plan's view over a store: what it writes expires by the same rules, and hides the base's copy.
docStoreContract('overlay', async (clock) => {
  const store = new OverlayDocStore(new MemoryDocStore({ clock }), { clock });
  return { store, done: () => store.close() };
});

docStoreContract('sqlite', async (clock) => {
  const tmp = tempDir();
  const store = await SqliteDocStore.open(join(tmp.dir, 'store.db'), { clock });
  return {
    store,
    done: async () => {
      await store.close();
      tmp.cleanup();
    },
  };
});

import { join } from 'node:path';
import { MemoryDocStore } from '../../../shared/adapters/store/memory.js';
import { SqliteDocStore } from '../../../shared/adapters/store/sqlite.js';
import { docStoreContract } from '../../helpers/docstore-contract.js';
import { tempDir } from '../../helpers/tmp.js';

docStoreContract('memory', async () => {
  const store = new MemoryDocStore();
  return { store, done: () => store.close() };
});

docStoreContract('sqlite', async () => {
  const tmp = tempDir();
  const store = await SqliteDocStore.open(join(tmp.dir, 'store.db'));
  return {
    store,
    done: async () => {
      await store.close();
      tmp.cleanup();
    },
  };
});

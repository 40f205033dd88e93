// Registered for every test file (vitest setupFiles): matchers for aws-sdk-client-mock.
import 'aws-sdk-client-mock-vitest/extend';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

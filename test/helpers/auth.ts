/** The admin key every test server is started with (ASSETPIPE_ADMIN_KEY). */
export const TEST_ADMIN_KEY = 'test-admin-key-0123456789abcdef';

export const AUTH = { authorization: `Bearer ${TEST_ADMIN_KEY}` } as const;

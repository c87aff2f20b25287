import { afterEach } from 'node:test';

/**
 * A list to push clean-ups onto; after each test they all run, newest first, whatever the others
 * do, and the first failure is reported.
 */
export function cleanupsAfterEach(): Array<() => Promise<void>> {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    let first: unknown = null;
    for (const c of cleanups.splice(0).reverse()) {
      try {
        await c();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== null) throw first;
  });
  return cleanups;
}

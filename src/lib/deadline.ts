/**
 * A signal that aborts with `parent` or after `ms`, whichever comes first; `clear()` once done.
 * Not `AbortSignal.any([parent, AbortSignal.timeout(ms)])`: Node 20 may garbage-collect a timeout
 * signal held only by the composite before it fires (nodejs/node#57736), and a wait on it then
 * never ends. Here the timer holds the controller until it fires or is cleared.
 */
export function deadlineSignal(parent: AbortSignal, ms: number): { readonly signal: AbortSignal; clear(): void } {
  const controller = new AbortController();
  if (parent.aborted) {
    controller.abort();
    return { signal: controller.signal, clear: () => undefined };
  }
  const abort = (): void => controller.abort();
  parent.addEventListener('abort', abort, { once: true });
  // Unref'd, as AbortSignal.timeout's is: a pending wait alone does not keep the process up.
  const timer = setTimeout(abort, ms);
  timer.unref();
  return {
    signal: controller.signal,
    clear() {
      clearTimeout(timer);
      parent.removeEventListener('abort', abort);
    },
  };
}

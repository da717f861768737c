/**
 * A client time-out that fires once the request has reached the server (`arrived()` holds), not
 * after a fixed number of milliseconds: on a loaded machine, a 50 ms time-out could fire before the
 * request was even sent, and the server would have nothing to record.
 */
export function timeOutOnceArrived(arrived: () => boolean): AbortSignal {
  const controller = new AbortController();
  const check = setInterval(() => {
    if (!arrived()) return;
    clearInterval(check);
    controller.abort(new DOMException("client time-out", "TimeoutError"));
  }, 5);
  check.unref();
  return controller.signal;
}

import send from 'send';
import type { Call } from './call.js';

/**
 * `static` mode: serves the files under static_path (index.html for folders, ranges,
 * conditional requests), as of-watchdog's file server does. Paths cannot escape the folder.
 */
export function createStaticHandler(root: string) {
  return (call: Call): void => {
    const { req, res } = call;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      call.failInternally(405, `method ${req.method} is not allowed; use GET or HEAD`);
      return;
    }
    // Still percent-encoded: send decodes it once, and refuses paths that would leave the root.
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    res.setHeader('X-Duration-Seconds', call.durationSeconds());
    send(req, path, { root, index: ['index.html'], dotfiles: 'deny' })
      .on('error', (error: { status?: number; message: string }) => {
        const status = error.status ?? 500;
        call.failInternally(status, status === 404 ? `not found: ${path}` : error.message);
      })
      .on('directory', () => call.failInternally(404, `not found: ${path}`))
      .pipe(res);
  };
}

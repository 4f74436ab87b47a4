// A function for the cron benchmark: records how late each call came after its X-Scheduled-Time
// (ms); GET answers the list of [scheduled, late] pairs.
const http = require('node:http');

const lateness = [];
http
  .createServer((req, res) => {
    const now = Date.now();
    if (req.method === 'GET') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(lateness));
      return;
    }
    const scheduled = Date.parse(req.headers['x-scheduled-time'] || '');
    if (!Number.isNaN(scheduled)) lateness.push([scheduled, now - scheduled]);
    req.resume();
    req.on('end', () => res.end('ok'));
  })
  .listen(Number(process.env.PORT || 3000), '127.0.0.1');

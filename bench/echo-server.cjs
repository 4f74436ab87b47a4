// The upstream every benchmark wraps: a bare node:http server that echoes the request body.
const http = require('node:http');

http
  .createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end(Buffer.concat(chunks));
    });
  })
  .listen(Number(process.env.PORT || 3000), '127.0.0.1');

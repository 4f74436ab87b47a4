// Verification of Alexa skill requests, as Amazon requires of an endpoint it calls over HTTPS:
// https://developer.amazon.com/en-US/docs/alexa/custom-skills/host-a-custom-skill-as-a-web-service.html
// Node's stdlib only (X509Certificate, crypto.verify, tls.rootCertificates).
import { X509Certificate, verify as verifySignature } from 'node:crypto';
import { get } from 'node:https';
import { rootCertificates } from 'node:tls';

/** A request that must be rejected before the skill's handler runs; `message` says why. */
export class VerificationError extends Error {}

/** How far a request's timestamp may be from now, Amazon's limit. */
export const toleranceSeconds = 150;
/** The name the signing certificate must carry (subject alternative name). */
export const signingName = 'echo-api.amazon.com';

/**
 * Amazon's rules for the `SignatureCertChainUrl` header, after normalising the URL (`..`
 * resolved): https (any case), host s3.amazonaws.com (any case), a path starting with
 * `/echo.api/` (case sensitive), and no port but 443.
 */
export function checkCertUrl(text) {
  let url;
  try {
    url = new URL(text);
  } catch {
    throw new VerificationError(`SignatureCertChainUrl "${text}" is not a URL`);
  }
  // URL lower-cases the scheme and host, drops the default port and resolves dot segments.
  if (url.protocol !== 'https:') throw new VerificationError('SignatureCertChainUrl is not https');
  if (url.hostname !== 's3.amazonaws.com') {
    throw new VerificationError('SignatureCertChainUrl is not on s3.amazonaws.com');
  }
  if (!url.pathname.startsWith('/echo.api/')) {
    throw new VerificationError('SignatureCertChainUrl path does not start with /echo.api/');
  }
  if (url.port !== '') throw new VerificationError('SignatureCertChainUrl port is not 443');
  return url.href;
}

/** PEM text → its certificates, in order (leaf first). */
export function parseChain(pem) {
  const blocks = String(pem).match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  if (!blocks) throw new VerificationError('the certificate chain holds no certificate');
  try {
    return blocks.map((block) => new X509Certificate(block));
  } catch (error) {
    throw new VerificationError(`the certificate chain cannot be read: ${error.message}`);
  }
}

/** GETs a certificate chain over https (5 s at most). */
export function fetchOverHttps(url) {
  return new Promise((resolve, reject) => {
    const req = get(url, { timeout: 5000 }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new VerificationError(`the certificate chain answered ${res.statusCode}`));
        return;
      }
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new VerificationError('the certificate chain timed out')));
    req.on('error', (error) =>
      reject(
        error instanceof VerificationError
          ? error
          : new VerificationError(`the certificate chain cannot be fetched: ${error.message}`),
      ),
    );
  });
}

/**
 * A request verifier. `fetchCertificate(url)` → PEM text (default: over https); chains are
 * cached by URL until their leaf expires (a failed fetch is not cached). `trustedRoots`: PEM
 * texts of the CAs a chain must lead to (default: Node's bundled roots). `now()`: ms.
 */
export function createVerifier({
  fetchCertificate = fetchOverHttps,
  trustedRoots = rootCertificates,
  now = Date.now,
} = {}) {
  const roots = trustedRoots.map((pem) => new X509Certificate(pem));
  const cache = new Map();

  const chainFor = async (url) => {
    const cached = cache.get(url);
    if (cached) {
      const chain = await cached;
      if (Date.parse(chain[0].validTo) > now()) return chain;
      cache.delete(url);
    }
    const loading = Promise.resolve(fetchCertificate(url)).then(parseChain);
    cache.set(url, loading);
    loading.catch(() => cache.delete(url));
    return loading;
  };

  /** What does not change with time: the name, the signatures, the CA. Once per chain fetched. */
  const checkedChains = new WeakMap();
  const checkSigners = (chain) => {
    const names = (chain[0].subjectAltName ?? '').split(',').map((name) => name.trim());
    if (!names.includes(`DNS:${signingName}`)) {
      throw new VerificationError(`the signing certificate is not for ${signingName}`);
    }
    for (let i = 0; i + 1 < chain.length; i++) {
      if (!chain[i].checkIssued(chain[i + 1]) || !chain[i].verify(chain[i + 1].publicKey)) {
        throw new VerificationError(
          `certificate "${chain[i].subject}" is not signed by the next one`,
        );
      }
    }
    const last = chain[chain.length - 1];
    const trusted = roots.some(
      (root) =>
        root.fingerprint256 === last.fingerprint256 ||
        (last.checkIssued(root) && last.verify(root.publicKey)),
    );
    if (!trusted) throw new VerificationError('the certificate chain leads to no trusted CA');
  };

  const checkChain = (chain) => {
    const at = now();
    for (const cert of chain) {
      if (Date.parse(cert.validFrom) > at || Date.parse(cert.validTo) < at) {
        throw new VerificationError(`certificate "${cert.subject}" is not valid now`);
      }
    }
    if (!checkedChains.has(chain)) {
      try {
        checkSigners(chain);
        checkedChains.set(chain, undefined);
      } catch (error) {
        checkedChains.set(chain, error);
      }
    }
    const refused = checkedChains.get(chain);
    if (refused) throw refused;
  };

  /**
   * Resolves with the parsed request when it is Amazon's, fresh and untouched; else rejects with
   * a VerificationError.
   */
  return async function verify(headers, body) {
    const urlHeader = headers['signaturecertchainurl'];
    const signature = headers['signature-256'];
    if (!urlHeader) throw new VerificationError('no SignatureCertChainUrl header');
    if (!signature) throw new VerificationError('no Signature-256 header');
    const chain = await chainFor(checkCertUrl(String(urlHeader)));
    checkChain(chain);
    const signed = verifySignature(
      'sha256',
      body,
      chain[0].publicKey,
      Buffer.from(String(signature), 'base64'),
    );
    if (!signed) throw new VerificationError('Signature-256 does not match the body');
    let envelope;
    let timestamp;
    try {
      envelope = JSON.parse(body.toString('utf8'));
      timestamp = Date.parse(envelope.request.timestamp);
    } catch {
      throw new VerificationError('the body is not a skill request with request.timestamp');
    }
    if (Number.isNaN(timestamp) || Math.abs(now() - timestamp) > toleranceSeconds * 1000) {
      throw new VerificationError(`request.timestamp is more than ${toleranceSeconds} s from now`);
    }
    return envelope;
  };
}

/**
 * @module base/redact
 * Secrets that must never reach an error message, `--debug` output or a log: the query
 * string of a URL (blob storage redirects are signed there: X-Amz-Signature, sig=, token=),
 * user:password in a URL, and bearer/basic credentials or token fields in text.
 */

const REDACTED = '<redacted>';

/** The URL without credentials, query or fragment (a `?<redacted>` marks a dropped query). */
export function redactUrl(u: URL | string): string {
  let url: URL;
  try {
    url = new URL(typeof u === 'string' ? u : u.href);
  } catch {
    return redactText(String(u));
  }
  const hadQuery = url.search !== '';
  url.username = '';
  url.password = '';
  url.search = '';
  url.hash = '';
  return `${url.href}${hadQuery ? `?${REDACTED}` : ''}`;
}

/** Redacts URL queries and userinfo, Authorization values and token-ish fields in free text. */
export function redactText(s: string): string {
  return s
    .replace(/\b(https?:\/\/)[^\s/@"'<>]*@/gi, '$1')
    .replace(/\b(https?:\/\/[^\s?#"'<>]*)\?[^\s#"'<>]*/gi, `$1?${REDACTED}`)
    .replace(/(\/[^\s?#"'<>]*)\?[^\s#"'<>]*=[^\s#"'<>]*/g, `$1?${REDACTED}`) // relative URLs with a query
    .replace(/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi, `$1 ${REDACTED}`)
    .replace(/(["']?\b(?:token|access_token|refresh_token|identitytoken|password|secret)["']?\s*[:=]\s*["']?)[^"'\s&,}]+/gi, `$1${REDACTED}`);
}

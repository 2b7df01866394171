/**
 * @module registry/www-authenticate
 * Parses WWW-Authenticate challenges (RFC 7235) as registries send them on 401:
 *   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:x:pull"
 *   Basic realm="Registry Realm"
 * A header may hold several challenges; parameter values are tokens or quoted strings with
 * backslash escapes. Scheme names are lowercased, parameter names too.
 */

export interface Challenge {
  /** Lowercased scheme: "bearer", "basic", ... */
  scheme: string;
  params: Record<string, string>;
}

const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

export function parseWwwAuthenticate(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  if (Array.isArray(header)) return header.flatMap((h) => parseWwwAuthenticate(h));
  const out: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const skipWs = (): void => {
    while (i < n && (header[i] === ' ' || header[i] === '\t')) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < n && TOKEN_CHAR.test(header[i]!)) i++;
    return header.slice(start, i);
  };
  /** Unquoted value: lenient, up to the next comma or whitespace (realm=https://x/t). */
  const readBare = (): string => {
    const start = i;
    while (i < n && header[i] !== ',' && header[i] !== ' ' && header[i] !== '\t') i++;
    return header.slice(start, i);
  };
  const readQuoted = (): string => {
    let s = '';
    i++; // opening quote
    while (i < n && header[i] !== '"') {
      if (header[i] === '\\' && i + 1 < n) i++;
      s += header[i];
      i++;
    }
    i++; // closing quote (or end)
    return s;
  };

  let current: Challenge | undefined;
  while (i < n) {
    skipWs();
    if (header[i] === ',') {
      i++;
      continue;
    }
    const name = readToken();
    if (name === '') {
      i++; // skip a stray character rather than loop forever
      continue;
    }
    skipWs();
    if (header[i] === '=') {
      i++;
      skipWs();
      const value = header[i] === '"' ? readQuoted() : readBare();
      if (current) current.params[name.toLowerCase()] = value;
      continue;
    }
    // A token not followed by "=" starts a new challenge.
    current = { scheme: name.toLowerCase(), params: {} };
    out.push(current);
  }
  return out;
}

/**
 * @module image/platform
 * Choosing one manifest from an image index: the platform string a user types
 * (`linux/arm64/v8`), the host's platform, and the matching rules Docker and containerd
 * use (os and architecture must match; a requested variant must match; without one, the
 * host's default variant is preferred). Attestation manifests (buildx's
 * `unknown/unknown` entries and `vnd.docker.reference.type`) are never chosen.
 */
import { BerthError } from '../base/errors.ts';
import type { Descriptor, Platform } from '../oci/types.ts';

const ARCH_FROM_NODE: Record<string, string> = {
  x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64',
};

/** Normalises architecture aliases (x86_64 → amd64, aarch64 → arm64). */
export function normalizeArch(arch: string, variant?: string): { architecture: string; variant?: string } {
  const a = arch.toLowerCase();
  if (a === 'x86_64' || a === 'x86-64') return { architecture: 'amd64', variant };
  if (a === 'aarch64') return { architecture: 'arm64', variant: variant ?? 'v8' };
  if (a === 'arm64') return { architecture: 'arm64', variant: variant ?? 'v8' };
  if (a === 'armhf') return { architecture: 'arm', variant: variant ?? 'v7' };
  if (a === 'armel') return { architecture: 'arm', variant: variant ?? 'v6' };
  if (a === 'i386' || a === 'i686') return { architecture: '386', variant };
  return variant ? { architecture: a, variant } : { architecture: a };
}

export function hostPlatform(): Platform {
  const arch = ARCH_FROM_NODE[process.arch] ?? process.arch;
  const n = normalizeArch(arch);
  return n.variant ? { os: 'linux', architecture: n.architecture, variant: n.variant } : { os: 'linux', architecture: n.architecture };
}

export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/i.test(p))) {
    throw new BerthError('INVALID_ARGUMENT', `invalid platform "${s}" (want os/arch[/variant], e.g. linux/arm64/v8)`);
  }
  const [os, arch, variant] = parts as [string, string, string | undefined];
  const n = normalizeArch(arch, variant);
  return n.variant ? { os: os.toLowerCase(), architecture: n.architecture, variant: n.variant } : { os: os.toLowerCase(), architecture: n.architecture };
}

export function formatPlatform(p: Partial<Platform> | undefined): string {
  if (!p) return 'unknown';
  return [p.os ?? 'unknown', p.architecture ?? 'unknown', p.variant].filter(Boolean).join('/');
}

export function isAttestation(d: Descriptor): boolean {
  return d.annotations?.['vnd.docker.reference.type'] !== undefined ||
    (d.platform?.os === 'unknown' && d.platform?.architecture === 'unknown');
}

function variantMatches(want: Platform, have: Platform | undefined): boolean {
  if (!have) return false;
  const h = normalizeArch(have.architecture, have.variant);
  if (want.variant === undefined) return true;
  // arm64 images usually omit "v8"; treat a missing variant as the default one.
  return (h.variant ?? '') === want.variant || (h.variant === undefined && want.architecture === 'arm64' && want.variant === 'v8');
}

/**
 * Picks the best manifest for `want` from an index's entries. Exact variant matches win over
 * entries without a variant. Throws UNSUPPORTED listing what the index offers.
 */
export function selectManifest(manifests: readonly Descriptor[], want: Platform): Descriptor {
  const candidates = manifests.filter((d) => !isAttestation(d) && d.platform !== undefined);
  const matching = candidates.filter((d) => {
    const p = d.platform as Platform;
    const h = normalizeArch(p.architecture, p.variant);
    return p.os.toLowerCase() === want.os && h.architecture === want.architecture && variantMatches(want, p);
  });
  const exact = matching.find((d) => normalizeArch(d.platform!.architecture, d.platform!.variant).variant === want.variant);
  const pick = exact ?? matching[0];
  if (!pick) {
    const offered = candidates.map((d) => formatPlatform(d.platform)).join(', ') || 'none';
    throw new BerthError('UNSUPPORTED', `no image for platform ${formatPlatform(want)} (available: ${offered})`, {
      details: { wanted: formatPlatform(want), available: candidates.map((d) => formatPlatform(d.platform)) },
    });
  }
  return pick;
}

/**
 * @module native/errors
 * berth-helper's error contract (native/helper.h), parsed: every failure is one line
 * `berth-helper: STEP PATH: ERRNO_NAME (strerror)` and an exit status per class. This maps
 * it to a BerthError whose message keeps the line (so the failing syscall, path and errno
 * reach the user) and whose details carry `step`, `path` and `errno` for callers and tests.
 */
import { BerthError, type ErrorCode } from '../base/errors.ts';

/** Exit statuses of berth-helper, by failure class (native/helper.h). */
export const HELPER_EXIT = {
  FAIL: 1,
  USAGE: 2,
  NOTFOUND: 3,
  PERM: 4,
  UNSUPPORTED: 5,
  NOLOOP: 6,
  REFUSED: 7,
  NOSPACE: 8,
  EXISTS: 9,
  BUSY: 10,
  CORRUPT: 11,
  EXEC_SETUP: 125,
} as const;

const CODE_BY_EXIT: Readonly<Record<number, ErrorCode>> = {
  [HELPER_EXIT.FAIL]: 'FAILED_PRECONDITION',
  [HELPER_EXIT.USAGE]: 'INTERNAL', // berth built a bad command line: a bug
  [HELPER_EXIT.NOTFOUND]: 'NOT_FOUND',
  [HELPER_EXIT.PERM]: 'PERMISSION_DENIED',
  [HELPER_EXIT.UNSUPPORTED]: 'UNSUPPORTED',
  [HELPER_EXIT.NOLOOP]: 'UNSUPPORTED',
  [HELPER_EXIT.REFUSED]: 'HOSTILE_LAYER', // container content that must not be followed or read
  [HELPER_EXIT.NOSPACE]: 'NO_SPACE',
  [HELPER_EXIT.EXISTS]: 'ALREADY_EXISTS',
  [HELPER_EXIT.BUSY]: 'FAILED_PRECONDITION',
  [HELPER_EXIT.CORRUPT]: 'CORRUPT',
};

/** Class of an errno name, as status_for_errno() in berth-helper.c (for exec's 125). */
function exitForErrno(name: string): number {
  switch (name) {
    case 'ENOENT': case 'ENOTDIR': case 'ESRCH': return HELPER_EXIT.NOTFOUND;
    case 'EPERM': case 'EACCES': case 'EROFS': return HELPER_EXIT.PERM;
    case 'ENOSYS': case 'EOPNOTSUPP': case 'ENODEV': case 'ENOTBLK': return HELPER_EXIT.UNSUPPORTED;
    case 'ELOOP': case 'EXDEV': case 'EFBIG': return HELPER_EXIT.REFUSED;
    case 'ENOSPC': case 'EDQUOT': return HELPER_EXIT.NOSPACE;
    case 'EEXIST': return HELPER_EXIT.EXISTS;
    case 'EBUSY': return HELPER_EXIT.BUSY;
    default: return HELPER_EXIT.FAIL;
  }
}

export interface HelperFailure {
  step: string;
  path: string;
  errno: string;
  reason: string;
  /** The whole line, without the "berth-helper: " prefix. */
  text: string;
}

const LINE = /^berth-helper: (.+?): (E[A-Z0-9]+) \((.*)\)$/;

/** The last error line in output, parsed; undefined when there is none. */
export function parseHelperError(output: string): HelperFailure | undefined {
  const lines = output.split('\n').filter((l) => l.startsWith('berth-helper: '));
  const last = lines[lines.length - 1];
  if (last === undefined) return undefined;
  const m = LINE.exec(last);
  if (!m) return { step: '', path: '', errno: 'EUNKNOWN', reason: last.slice(14), text: last.slice(14) };
  const where = m[1]!;
  // STEP never contains ' /'; PATH (when present) starts at the first " /" or the last space.
  const slash = where.indexOf(' /');
  const sp = slash >= 0 ? slash : where.lastIndexOf(' ');
  const [step, path] = sp > 0 ? [where.slice(0, sp), where.slice(sp + 1)] : [where, ''];
  return { step, path, errno: m[2]!, reason: m[3]!, text: last.slice(14) };
}

/**
 * The BerthError for a failed helper run. `exitCode` picks the class; exec's set-up status
 * (125) and unknown statuses fall back to the errno name. `context` is prepended.
 */
export function helperError(context: string, exitCode: number | null, output: string, cause?: unknown): BerthError {
  const f = parseHelperError(output);
  const cls = exitCode !== null && CODE_BY_EXIT[exitCode] !== undefined ? exitCode : exitForErrno(f?.errno ?? '');
  const code = CODE_BY_EXIT[cls] ?? 'FAILED_PRECONDITION';
  const text = f?.text ?? (output.trim().split('\n').slice(-1)[0] || `berth-helper exited with ${exitCode}`);
  return new BerthError(code, `${context}: ${text}`, {
    cause,
    details: { step: f?.step, path: f?.path, errno: f?.errno, helperExit: exitCode, noLoop: cls === HELPER_EXIT.NOLOOP },
  });
}

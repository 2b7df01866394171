/**
 * @module cli/program
 * The command tree, as data plus lazy actions: each action imports its implementation only
 * when it runs, so parsing and --help stay cheap. Flags follow Podman's spelling where
 * Podman has the same flag (`--tls-verify=false`, `--authfile`, `--platform`, `-q`).
 */
import { Command, Option, InvalidArgumentError } from 'commander';
import { addMachineCommands } from './machine-commands.ts';
import { addNetworkCommands } from './network-commands.ts';
import { lazy } from './lazy.ts';
import { enableTrace, trace } from '../base/trace.ts';

export interface GlobalOptions {
  root?: string;
  debug?: boolean;
  snapshotFormat?: string;
  runtime?: string;
}

function parseBool(v: string): boolean {
  if (/^(true|1|yes)$/i.test(v)) return true;
  if (/^(false|0|no)$/i.test(v)) return false;
  throw new InvalidArgumentError('expected true or false');
}


const images = () => import('./commands/images.ts');
const pull = () => import('./commands/pull.ts');
const login = () => import('./commands/login.ts');

function tlsVerify(): Option {
  return new Option('--tls-verify <bool>', 'require HTTPS and verify certificates (false allows plain HTTP)').argParser(parseBool);
}

export function buildProgram(): Command {
  const program = new Command('berth')
    .description('Containers as plain systemd services, built from OCI images')
    .version(process.env.BERTH_VERSION ?? '0.1.0', '--version')
    .option('--root <dir>', 'image store and state directory (env BERTH_ROOT; default /var/lib/berth)')
    .option('--debug', 'print causes and stack traces of errors')
    .addOption(new Option('--snapshot-format <format>', 'format of new layer snapshots (env BERTH_SNAPSHOT_FORMAT)').choices(['erofs', 'dir']))
    .option('--runtime <name>', 'container runtime: nspawn (root, the default) or bwrap (a user, the default) (env BERTH_RUNTIME)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .hook('preAction', (cmd) => {
      if (cmd.opts().debug === true) enableTrace();
      trace(`parsed: ${process.argv.slice(2).join(' ')}`);
    });
  program.configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `berth: ${s}` : s) });

  program
    .command('pull')
    .description('pull an image from a registry into the local store')
    .argument('<reference>', 'image reference, e.g. busybox, host:port/repo:tag, repo@sha256:...')
    .option('--platform <os/arch[/variant]>', 'platform to pull from a multi-platform image (default: linux/host arch)')
    .addOption(tlsVerify())
    .option('--authfile <file>', 'credentials file (default: the containers auth.json search path)')
    .option('--creds <user:password>', 'credentials for this pull')
    .option('-q, --quiet', 'print only the image digest')
    .action(lazy(pull, 'pullCommand'));

  program
    .command('images')
    .description('list images in the local store')
    .option('--json', 'JSON output')
    .option('-q, --quiet', 'print only image IDs')
    .option('--digests', 'show manifest digests')
    .option('--no-trunc', 'do not truncate IDs')
    .action(lazy(images, 'listCommand'));

  program
    .command('rmi')
    .description('remove images (untag; blobs go with `berth image prune`)')
    .argument('<reference...>')
    .option('-f, --force', 'no error when an image does not exist')
    .action(lazy(images, 'removeCommand'));

  const image = program.command('image').description('manage images');
  image.command('ls').alias('list').description('list images')
    .option('--json', 'JSON output').option('-q, --quiet', 'print only image IDs')
    .option('--digests', 'show manifest digests').option('--no-trunc', 'do not truncate IDs')
    .action(lazy(images, 'listCommand'));
  image.command('inspect').description('show an image as JSON: digest, platform, config, layers, sizes, created')
    .argument('<reference...>').action(lazy(images, 'inspectCommand'));
  image.command('rm').description('remove images').argument('<reference...>')
    .option('-f, --force', 'no error when an image does not exist').action(lazy(images, 'removeCommand'));
  image.command('prune').description('remove blobs and snapshots no image references')
    .action(lazy(images, 'pruneCommand'));
  image.command('fsck').description('verify every blob digest, every reference and every snapshot (exit 0 only when clean)')
    .option('--repair', 'rebuild missing or partial snapshots from the blobs')
    .option('--json', 'JSON output').action(lazy(images, 'fsckCommand'));
  image.command('import').description('import an OCI layout directory or a `docker save` tarball')
    .argument('<path>').argument('[name]', 'name for images that carry none (e.g. myimage:latest)')
    .action(lazy(images, 'importCommand'));
  image.command('export').description('export images as an OCI layout directory or a docker-archive tarball')
    .argument('<reference...>')
    .requiredOption('-o, --output <path>', 'output directory (oci) or file (docker-archive)')
    .addOption(new Option('--format <format>', 'output format').choices(['oci', 'docker-archive']).default('oci'))
    .action(lazy(images, 'exportCommand'));
  image.command('mount').description("mount an image's merged rootfs read-only")
    .argument('<reference>').argument('[dir]', 'mount point (default: under the store)')
    .action(lazy(images, 'mountCommand'));
  image.command('umount').alias('unmount').description('unmount an image mounted with `berth image mount`')
    .argument('<reference-or-dir>').action(lazy(images, 'umountCommand'));

  program.command('login').description('store registry credentials in auth.json (mode 0600)')
    .argument('<registry>')
    .option('-u, --username <user>').option('-p, --password <password>')
    .option('--password-stdin', 'read the password from stdin')
    .option('--authfile <file>', 'credentials file to write')
    .addOption(tlsVerify())
    .action(lazy(login, 'loginCommand'));
  program.command('logout').description('remove registry credentials from auth.json')
    .argument('[registry]').option('-a, --all', 'remove all credentials')
    .option('--authfile <file>', 'credentials file to change')
    .action(lazy(login, 'logoutCommand'));

  addMachineCommands(program);
  addNetworkCommands(program);
  return program;
}

/**
 * @module cli/machine-commands
 * Commander definitions of the machine commands (run, create, start, stop, restart, kill,
 * rm, rename, ls/ps, status, logs, inspect, exec, shell, enable, disable). program.ts calls
 * addMachineCommands(); implementations load lazily, as in program.ts.
 */
import type { Command } from 'commander';
import { lazy } from './lazy.ts';


const runMod = () => import('./commands/machine-run.ts');
const machine = () => import('./commands/machine.ts');
const ps = () => import('./commands/ps.ts');
const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

function runOptions(c: Command): Command {
  return c
    .option('--name <name>', 'container (machine) name')
    .option('--rm', 'remove the container when it exits (foreground only)')
    .option('-i, --interactive', 'keep stdin connected')
    .option('-t, --tty', 'allocate a terminal')
    .option('-e, --env <KEY=VALUE>', 'set an environment variable (repeatable)', collect)
    .option('--env-file <file>', 'read environment variables from a file (repeatable)', collect)
    .option('-w, --workdir <dir>', 'working directory inside')
    .option('-u, --user <user[:group]>', 'user to run as')
    .option('--entrypoint <cmd>', "override the image's entrypoint")
    .option('-v, --volume <host:ctr[:opts]>', 'bind mount; opts: ro, idmap, U, suid, dev, noexec (repeatable)', collect)
    .option('--tmpfs <path>', 'mount a tmpfs (repeatable)', collect)
    .option('--read-only', 'read-only root filesystem')
    .option('--hostname <name>', 'hostname inside')
    .option('-m, --memory <size>', 'memory limit, e.g. 512M')
    .option('--cpus <n>', 'CPU limit, e.g. 1.5')
    .option('--pids-limit <n>', 'tasks limit')
    .option('--slice <name>', 'systemd slice')
    .option('--restart <policy>', 'no, on-failure[:N] or always')
    .option('--stop-signal <sig>', 'signal that stops the container')
    .option('--stop-timeout <s>', 'seconds before SIGKILL on stop')
    .option('--boot', "run the image's own init")
    .option('--userns <mode>', 'auto (private UID range, default) or host')
    .option('--network <mode>', 'a zone NAME (default: berth), none/private (loopback only) or host')
    .option('--ip <addr>', "a fixed IPv4 address in the zone")
    .option('-p, --publish <[ip:]host:ctr[/proto]>', 'publish a port, also on 127.0.0.1 (repeatable; ranges; ctr alone: a free host port)', collect)
    .option('-P, --publish-all', "publish the image's ExposedPorts on free host ports")
    .option('--network-alias <name>', 'another name the machine is found by in its zone (repeatable)', collect)
    .option('--dns <ip>', 'resolver for the machine instead of the zone\'s (repeatable)', collect)
    .option('--add-host <name:ip>', 'add a line to /etc/hosts (ip may be host-gateway; repeatable)', collect)
    .argument('<image>')
    .argument('[command...]')
    .passThroughOptions();
}

export function addMachineCommands(program: Command): void {
  // `berth run IMAGE sh -c …` and `berth exec NAME cmd -x`: everything after the image/name
  // belongs to the container, so global options must come before the subcommand (as Podman).
  program.enablePositionalOptions();
  runOptions(program.command('run').description('create and run a container (attached, or as a systemd service with -d)')
    .option('-d, --detach', 'run in the background as a systemd service (root: systemd-nspawn@NAME.service, a user: berth-sandbox@NAME.service) and return once it is active'))
    .action(lazy(runMod, 'runCommand'));
  runOptions(program.command('create').description('create a container (settings, drop-ins) without starting it'))
    .action(lazy(runMod, 'createCommand'));

  program.command('start').description('start containers (systemctl start systemd-nspawn@NAME)').argument('<name...>')
    .option('--user <name>', "refused: a user's containers are changed by that user").action(lazy(machine, 'startCommand'));
  program.command('stop').description('stop containers').argument('<name...>')
    .option('-t, --time <seconds>', 'seconds to wait before SIGKILL').option('--user <name>', "refused: a user's containers are changed by that user").action(lazy(machine, 'stopCommand'));
  program.command('restart').description('restart containers').argument('<name...>')
    .option('-t, --time <seconds>', 'seconds to wait before SIGKILL').option('--user <name>', "refused: a user's containers are changed by that user").action(lazy(machine, 'restartCommand'));
  program.command('kill').description("send a signal to containers' main process").argument('<name...>')
    .option('-s, --signal <sig>', 'signal (default SIGKILL)').option('--user <name>', "refused: a user's containers are changed by that user").action(lazy(machine, 'killCommand'));
  program.command('rm').description('remove containers: unit state, files, mount, upper dir').argument('<name...>')
    .option('-f, --force', 'kill running containers first; no error for missing ones').option('--user <name>', "refused: a user's containers are changed by that user").action(lazy(machine, 'rmCommand'));
  program.command('rename').description('rename a stopped container').argument('<old>').argument('<new>')
    .action(lazy(machine, 'renameCommand'));
  for (const name of ['ps', 'ls']) {
    program.command(name).description('list containers (running; -a for all)')
      .option('-a, --all', 'include stopped containers').option('--json', 'JSON output').option('-q, --quiet', 'names only')
      .option('--user <name>', "root: show that user's containers (read-only)")
      .addHelpText('after', "\nRoot's list shows root's containers only; a user's are listed by that user, or by root with --user NAME.")
      .action(lazy(ps, 'psCommand'));
  }
  program.command('status').description('unit state, machine registration, resources and recent log lines').argument('<name>')
    .option('-n, --lines <n>', 'journal lines to show').option('--json', 'JSON output').option('--user <name>', "root: show that user's containers (read-only)").action(lazy(machine, 'statusCommand'));
  program.command('logs').description("a container's output, from the journal").argument('<name>')
    .option('-f, --follow', 'keep following').option('-n, --tail <n>', 'last N lines').option('--since <time>', 'since a time (journalctl syntax)')
    .option('--user <name>', "root: show that user's containers (read-only)").action(lazy(machine, 'logsCommand'));
  program.command('inspect').description('containers as JSON: settings, drop-ins, unit and machine properties').argument('<name...>')
    .option('--user <name>', "root: show that user's containers (read-only)").action(lazy(machine, 'inspectCommand'));
  program.command('exec').description('run a command in a running container').argument('<name>').argument('<command...>')
    .option('-i, --interactive', 'keep stdin connected').option('-t, --tty', 'allocate a terminal')
    .option('-u, --user <user[:group]>', 'user').option('-w, --workdir <dir>', 'working directory')
    .option('-e, --env <KEY=VALUE>', 'environment (repeatable)', collect).passThroughOptions()
    .action(lazy(machine, 'execCommand'));
  program.command('shell').description('a shell in a running container').argument('<name>').argument('[command...]')
    .action(lazy(machine, 'shellCommand'));
  program.command('enable').description('start containers at boot (root: machines.target.wants; a user: default.target.wants, with lingering)').argument('<name...>')
    .option('--user <name>', "refused: a user's containers are changed by that user").action(lazy(machine, 'enableCommand'));
  program.command('disable').description('do not start containers at boot').argument('<name...>')
    .option('--user <name>', "refused: a user's containers are changed by that user").action(lazy(machine, 'disableCommand'));
}

/**
 * @module cli/network-commands
 * Commander definitions of `berth zone …`, its alias `berth network …`, and `berth port`.
 * Implementations load lazily, as in program.ts.
 */
import type { Command } from 'commander';
import { lazy } from './lazy.ts';

const zone = () => import('./commands/zone.ts');

function zoneCommands(c: Command): void {
  c.command('create').description('define a zone (bridge, NAT, resolver; brought up by its first machine)').argument('<name>')
    .option('--subnet <cidr>', 'IPv4 subnet (default: the first free 10.199.N.0/24)').action(lazy(zone, 'zoneCreateCommand'));
  c.command('ls').alias('list').description('list zones').option('--json', 'JSON output').option('-q, --quiet', 'names only')
    .action(lazy(zone, 'zoneLsCommand'));
  c.command('inspect').description('zones as JSON: subnet, gateway, bridge, unit state, machines').argument('<name...>')
    .action(lazy(zone, 'zoneInspectCommand'));
  c.command('rm').alias('remove').description('remove zones (refused while machines use them): unit, bridge, rules, files')
    .argument('<name...>').action(lazy(zone, 'zoneRmCommand'));
}

export function addNetworkCommands(program: Command): void {
  zoneCommands(program.command('zone').description('manage network zones: bridges whose machines reach each other by name'));
  zoneCommands(program.command('network').description('alias of `berth zone` (Docker\'s name)'));
  program.command('port').description("a container's published ports").argument('<name>').argument('[private-port]', 'PORT[/PROTO]')
    .option('--json', 'JSON output').action(lazy(zone, 'portCommand'));
}

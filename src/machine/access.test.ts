import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { parseUnit } from '../unit/index.ts';
import { containerUser } from './access.ts';

test("exec's default user is the container's: User=, else the setuser prefix, else root", () => {
  assert.equal(containerUser(parseUnit('[Exec]\nUser=www\nParameters=/bin/sh\n')), 'www');
  assert.equal(containerUser(parseUnit("[Exec]\nParameters='/run/host/berth/init' -- '/run/host/berth/setuser' '1234:5678' -- '/bin/sh'\n")), '1234:5678');
  assert.equal(containerUser(parseUnit("[Exec]\nParameters='/run/host/berth/init' -- '/bin/sh'\n")), undefined);
  assert.equal(containerUser(undefined), undefined);
});

#!/usr/bin/python3
"""Helpers for bench/ipmi-vs-pyghmi.sh (run with /usr/bin/python3, which has pyghmi).

  ipmi-pyghmi.py bmc PORT              pyghmi's reference BMC on 127.0.0.1:PORT (admin/password)
  ipmi-pyghmi.py client PORT SECONDS   one RMCP+ session (suite 3), Get Chassis Status in a loop; prints JSON
"""
import json
import sys
import time


def bmc(port):
    import pyghmi.ipmi.bmc as bmcmod

    class PowerBmc(bmcmod.Bmc):
        def get_power_state(self):
            return 'off'

    print('PYGHMI_READY', flush=True)
    PowerBmc({'admin': 'password'}, port=port, address='127.0.0.1').listen()


def client(port, seconds):
    from pyghmi.ipmi.command import Command
    import pyghmi.ipmi.private.session as ipmisession

    # pyghmi's BMC always negotiates suite 3, and pyghmi's client crashes if it proposed 17 (it
    # does first). Make the client propose suite 3 from the start, against both servers alike.
    original_init = ipmisession.Session._initsession

    def init_suite3(self):
        original_init(self)
        self.attemptedhash = 1

    ipmisession.Session._initsession = init_suite3
    cmd = Command(bmc='127.0.0.1', userid='admin', password='password', port=port, keepalive=False)
    # warm-up, and a check that the answer is what we think it is
    rsp = cmd.raw_command(netfn=0, command=1)
    if rsp.get('code', 0) != 0:
        raise SystemExit('Get Chassis Status failed: %r' % rsp)
    n = 0
    errors = 0
    t0 = time.monotonic()
    end = t0 + seconds
    while time.monotonic() < end:
        r = cmd.raw_command(netfn=0, command=1)
        if r.get('code', 0) != 0 or 'error' in r:
            errors += 1
        n += 1
    elapsed = time.monotonic() - t0
    print(json.dumps({'requests': n, 'errors': errors, 'seconds': elapsed}), flush=True)


if __name__ == '__main__':
    if sys.argv[1] == 'bmc':
        bmc(int(sys.argv[2]))
    else:
        client(int(sys.argv[2]), float(sys.argv[3]))

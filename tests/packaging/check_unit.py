#!/usr/bin/env python3
"""Checks the generated systemd unit.

* placeholders are all filled in and ExecStart= names the installed binary;
* Type= is the one the build chose (--type: notify-reload for systemd 253
  and later, with no ExecReload=; notify, with ExecReload= sending SIGHUP);
* the settings the daemon relies on are there and agree with its defaults
  (stop timeout above shutdown.grace_ms plus the final Kafka flush, start
  timeout above startup.timeout_ms plus a token request, the credentials
  that the example configuration names are loaded);
* `systemd-analyze verify` has nothing to say about it (on a copy whose
  ExecStart= points at the built binary, with the man pages of docs/man
  visible, so Documentation= is checked too);
* `systemd-analyze security --offline=yes` rates its exposure 2.0 or lower.
"""

import argparse
import os
import re
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Checker, effective_config, need_tool, run, unit_seconds, unit_settings  # noqa: E402

MAX_EXPOSURE = 2.0
FLUSH_S = 2  # rd_kafka_flush() at exit, after the drain (daemon/main.c)


def setting(settings, key, section="Service"):
    vals = [v for s, k, v in settings if s == section and k == key]
    return vals[-1] if vals else None


def settings_all(settings, key, section="Service"):
    return [v for s, k, v in settings if s == section and k == key]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unit", required=True, help="generated bwprovd.service")
    ap.add_argument("--bwprovd", required=True, help="built binary")
    ap.add_argument("--exec-path", required=True, help="ExecStart= binary expected")
    ap.add_argument("--man-dir", required=True, help="docs/man")
    ap.add_argument("--example-conf", required=True, help="systemd/bwprovd.conf")
    ap.add_argument("--type", required=True, choices=("notify", "notify-reload"),
                    help="the Type= the build chose (BWPROVD_UNIT_TYPE)")
    a = ap.parse_args()
    analyze = need_tool("systemd-analyze")
    c = Checker("packaging_unit")

    with open(a.unit) as f:
        text = f.read()
    left = re.findall(r"@[A-Za-z_]+@", text)
    c.check(not left, f"placeholders left in {a.unit}: {left}")
    st = unit_settings(a.unit)

    # ExecStart= and the configuration file it passes.
    exec_start = setting(st, "ExecStart") or ""
    argv = exec_start.split()
    if c.check(argv and argv[0] == a.exec_path,
               f"ExecStart= runs {argv[:1]}, expected {a.exec_path}"):
        c.ok(f"ExecStart={exec_start}")
    c.check("-c" in argv, "ExecStart= passes no -c FILE")

    # What the daemon's behaviour needs from the unit.
    # Both types rest on bwprovd's RELOADING=1 + MONOTONIC_USEC= ... READY=1
    # on SIGHUP; notify-reload has systemd send the signal, notify needs
    # ExecReload= to.
    typ = setting(st, "Type")
    c.check(typ == a.type, f"Type={typ}, the build chose {a.type}")
    reload = setting(st, "ExecReload")
    if a.type == "notify":
        c.check(re.search(r"kill -HUP \$MAINPID", reload or "") is not None,
                f"ExecReload= does not send SIGHUP: {reload!r}")
    else:
        c.check(reload is None, f"Type=notify-reload with an ExecReload= ({reload!r})")
        sig = setting(st, "ReloadSignal")
        c.check(sig in (None, "SIGHUP", "HUP"), f"ReloadSignal={sig}: bwprovd reloads on SIGHUP")
    if not c.failures:
        c.ok(f"Type={typ}" + (f", ExecReload={reload}" if reload else ", no ExecReload="))
    c.check(setting(st, "Restart") == "on-failure", "Restart= is not on-failure")
    prevent = " ".join(settings_all(st, "RestartPreventExitStatus")).split()
    c.check({"64", "78"} <= set(prevent),
            f"RestartPreventExitStatus= lacks 64 or 78: {prevent}")
    wd = setting(st, "WatchdogSec")
    c.check(wd is not None and unit_seconds(wd) > 0, "WatchdogSec= is not set")
    c.check(setting(st, "DynamicUser") == "yes", "DynamicUser= is not yes")
    c.check(setting(st, "StateDirectory") == "bwprovd", "StateDirectory= is not bwprovd")

    conf = dict(effective_config(a.bwprovd))
    grace_s = int(conf["shutdown.grace_ms"]) / 1000
    startup_s = int(conf["startup.timeout_ms"]) / 1000
    webex_s = int(conf["webex.timeout_ms"]) / 1000
    stop = unit_seconds(setting(st, "TimeoutStopSec") or "0")
    # A stop: the requests on the wire (webex.timeout_ms), their records
    # (shutdown.grace_ms), the last flush, a margin.
    need = webex_s + grace_s + FLUSH_S + 10
    if c.check(stop >= need, f"TimeoutStopSec={stop:g}s leaves no room: webex.timeout_ms "
               f"{webex_s:g}s + shutdown.grace_ms {grace_s:g}s + flush {FLUSH_S}s + 10s margin "
               f"= {need:g}s"):
        c.ok(f"TimeoutStopSec={stop:g}s >= {need:g}s")
    start = unit_seconds(setting(st, "TimeoutStartSec") or "0")
    need = startup_s + webex_s
    if c.check(start >= need, f"TimeoutStartSec={start:g}s is below startup.timeout_ms "
               f"{startup_s:g}s + webex.timeout_ms {webex_s:g}s"):
        c.ok(f"TimeoutStartSec={start:g}s >= {need:g}s")

    # bwprovd(8) quotes these two; keep it in step with the unit.
    with open(os.path.join(a.man_dir, "bwprovd.8")) as f:
        page = f.read()
    for key in ("WatchdogSec", "TimeoutStopSec"):
        c.check(f"{key}={setting(st, key)}" in page,
                f"bwprovd(8) does not say {key}={setting(st, key)} as the unit does")

    creds = {v.split(":", 1)[0] for v in settings_all(st, "LoadCredential")}
    with open(a.example_conf) as f:
        used = set(re.findall(r"^#?[a-z][a-z0-9_.-]* = cred:([A-Za-z0-9_.-]+)$", f.read(),
                              re.M))
    if c.check(used and used <= creds, f"the example configuration uses credentials the "
               f"unit does not load: {sorted(used - creds)}"):
        c.ok(f"credentials named by the example configuration are loaded: {sorted(used)}")

    with tempfile.TemporaryDirectory() as tmp:
        # A copy that runs the built binary: verify wants ExecStart= to exist.
        unit = os.path.join(tmp, "bwprovd.service")
        with open(unit, "w") as f:
            f.write(re.sub(r"^ExecStart=\S+", "ExecStart=" + os.path.abspath(a.bwprovd),
                           text, count=1, flags=re.M))
        env = dict(os.environ)
        man_opt = "--man=yes"
        if shutil.which("man"):
            # The man pages as man(1) would find them once installed; the
            # trailing ':' keeps the system's own path behind them.
            for sec in ("5", "8"):
                os.makedirs(os.path.join(tmp, "man", "man" + sec))
            for page in os.listdir(a.man_dir):
                m = re.fullmatch(r".+\.([58])", page)
                if m:
                    shutil.copy(os.path.join(a.man_dir, page),
                                os.path.join(tmp, "man", "man" + m.group(1)))
            env["MANPATH"] = os.path.join(tmp, "man") + ":"
        else:
            print("note: man(1) is not installed: Documentation= is not checked")
            man_opt = "--man=no"

        rc, out, err = run([analyze, "verify", man_opt, "--recursive-errors=no", unit], env=env)
        lines = [ln for ln in (out + err).splitlines() if ln.strip()]
        ours = [ln for ln in lines
                if not re.match(r"^/(usr/)?lib/systemd/system/(?!bwprovd)", ln)]
        for ln in lines:
            print(f"verify: {ln}")
        if c.check(rc == 0 and not ours,
                   f"systemd-analyze verify exited {rc} with {len(ours)} message(s)"):
            c.ok("systemd-analyze verify: no messages")

        rc, out, err = run([analyze, "security", "--offline=yes", "--no-pager",
                            f"--threshold={int(MAX_EXPOSURE * 10)}", unit], env=env)
        m = re.search(r"Overall exposure level for bwprovd\.service:\s*([0-9.]+)", out)
        if not m:
            c.fail(f"systemd-analyze security gave no exposure level (exit {rc}): "
                   f"{(out + err).strip()[-500:]}")
        else:
            level = float(m.group(1))
            if c.check(level <= MAX_EXPOSURE and rc == 0,
                       f"exposure {level} is above {MAX_EXPOSURE} (exit {rc}); the "
                       f"settings that count:\n"
                       + "\n".join(ln for ln in out.splitlines() if ln.startswith("✗"))):
                c.ok(f"systemd-analyze security: exposure {level} <= {MAX_EXPOSURE}")
    c.finish()


if __name__ == "__main__":
    main()

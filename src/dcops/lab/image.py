"""The lab's base image: Debian 12 from debootstrap, cached by the hash of its package list
under ``$DCOPS_IMAGE_DIR`` (default ``/var/lib/dcops/images``).

The image is built in a temporary folder next to the cache and renamed into place only
when every step succeeded, so an interrupted or failed build never leaves a half image
that looks good. Chroot steps run under ``systemd-nspawn`` (not a bare chroot), so they
leave no mounts behind on the controller.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import dcops.lab.state as state
from dcops.lab.errors import LabError
from dcops.lab.progress import Reporter
from dcops.lab.ssh import IMAGE_ACCOUNT
from dcops.lab.system import require_root, require_tools, run

PACKAGES_FILE = Path(__file__).with_name("image-packages.txt")
SUITE = "bookworm"
#: Bumped when the build recipe below changes in a way that changes the image.
RECIPE_VERSION = "4"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PACKAGE_RE = r"[a-z0-9][a-z0-9+.-]+"
UNIT_RE = r"[a-zA-Z0-9@_.:-]+\.(service|socket|timer)"

#: Units that would talk to the outside world (or churn) in a lab host: masked in the image.
MASKED_UNITS = [
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "apt-daily.service",
    "apt-daily-upgrade.service",
    "unattended-upgrades.service",
    "man-db.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
    "systemd-timesyncd.service",
    "getty@tty1.service",
]

#: Names the host itself (sudo, postfix need it) and the lab's hosts, at each boot of the
#: volatile overlay; /etc/hosts stays writable for the roles.
HOSTS_UNIT = """\
[Unit]
Description=dcops lab: name this host and the lab's hosts in /etc/hosts
DefaultDependencies=no
After=local-fs.target
Before=network.target sysinit.target

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "127.0.1.1 %H" >> /etc/hosts; \\
  if [ -f /etc/dcops/hosts ]; then cat /etc/dcops/hosts >> /etc/hosts; fi'

[Install]
WantedBy=sysinit.target
"""

SSHD_DROPIN = """\
# dcops lab: host key and admin key come from the lab (bind-mounted at /etc/dcops).
HostKey /etc/dcops/ssh_host_ed25519_key
AuthorizedKeysFile .ssh/authorized_keys /etc/dcops/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UseDNS no
"""

DEBIAN_SOURCES = """\
Types: deb
URIs: {mirror}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: {security}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


@dataclass(frozen=True)
class PackageList:
    base: list[str]
    roles: list[str]
    disabled: list[str]  # units left disabled in the image (the roles enable them)

    @property
    def all(self) -> list[str]:
        return self.base + self.roles


@dataclass(frozen=True)
class Image:
    path: Path  # the root file system
    digest: str
    built_seconds: float
    size_bytes: int


def read_packages(path: Path = PACKAGES_FILE) -> PackageList:
    base: list[str] = []
    roles: list[str] = []
    disabled: list[str] = []
    current = roles
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line == "[base]":
            current = base
        elif line == "[roles]":
            current = roles
        elif line == "[disabled]":
            current = disabled
        elif re.fullmatch(UNIT_RE if current is disabled else PACKAGE_RE, line):
            current.append(line)
        else:
            what = "a systemd unit" if current is disabled else "a Debian package name"
            raise LabError(f"{path}:{lineno}: not {what}: {line!r}")
    if not base:
        raise LabError(f"{path}: no [base] packages")
    return PackageList(base, roles, disabled)


def digest(pkgs: PackageList) -> str:
    h = hashlib.sha256(f"{RECIPE_VERSION}\n{SUITE}\n".encode())
    for part in (pkgs.base, pkgs.roles, pkgs.disabled):
        h.update(("\n".join(part) + "\n--\n").encode())
    return h.hexdigest()[:16]


def images_dir() -> Path:
    return Path(os.environ.get("DCOPS_IMAGE_DIR", "/var/lib/dcops/images"))


def debian_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian archive this machine's apt uses (deb.debian.org by default)."""
    files = [sources_dir / "sources.list", *sorted((sources_dir / "sources.list.d").glob("*"))]
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        for m in re.finditer(r"(https?://[^\s]+/debian)(?=\s|$)", text):
            return m.group(1)
    return DEFAULT_MIRROR


def du_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            total += st.st_blocks * 512
    return total


def ensure_image(progress: Reporter | None = None, force: bool = False) -> Image:
    """Return the cached image for the current package list, building it when missing."""
    progress = progress or Reporter()
    pkgs = read_packages()
    dg = digest(pkgs)
    final = images_dir() / dg
    meta = final / "image.json"
    if meta.exists() and not force:
        info = json.loads(meta.read_text())
        return Image(final / "rootfs", dg, float(info["built_seconds"]), int(info["size_bytes"]))
    require_root()
    require_tools("debootstrap", "systemd-nspawn")
    if final.exists() and str(final / "rootfs") in state.images_in_use():
        raise LabError(f"image {final} is in use by a running lab: run `dcops lab down` before rebuilding it")
    images_dir().mkdir(parents=True, exist_ok=True)
    for stale in images_dir().glob(".build-*"):  # left by an interrupted build
        discard(stale)
    tmp = images_dir() / f".build-{dg}-{os.getpid()}"
    try:
        t0 = time.monotonic()
        _build(tmp / "rootfs", pkgs, progress)
        elapsed = time.monotonic() - t0
        size = du_bytes(tmp / "rootfs")
        (tmp / "image.json").write_text(
            json.dumps(
                {
                    "digest": dg,
                    "suite": SUITE,
                    "packages": pkgs.all,
                    "built_seconds": round(elapsed, 1),
                    "size_bytes": size,
                    "built_at": time.time(),
                },
                indent=2,
            )
        )
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)  # atomic: the image is either complete or absent
    except BaseException:
        discard(tmp)
        raise
    progress.note(f"image {dg} built in {elapsed:.0f} s, {size / 1e6:.0f} MB: {final / 'rootfs'}")
    prune(keep=final, progress=progress)
    return Image(final / "rootfs", dg, elapsed, size)


def discard(path: Path) -> None:
    """Delete a failed build: first unmount what debootstrap mounted in it (proc, sys, ...)."""
    prefix = str(path.resolve()) + "/"
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix):
            mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        run(["umount", "-l", point], what=f"unmount {point}", check=False)
    shutil.rmtree(path, ignore_errors=True)


def packages_named(message: str, packages: list[str]) -> list[str]:
    """The packages an apt error message blames (unknown package, no candidate, broken depends)."""
    found = []
    for pkg in packages:
        p = re.escape(pkg)
        if re.search(rf"(package {p}(?![\w.+-])|'{p}'|(^|\|)\s*{p} :)", message, re.MULTILINE):
            found.append(pkg)
    return found


def prune(keep: Path, progress: Reporter) -> None:
    """Remove cached images other than ``keep`` that no lab (state file) still runs on."""
    used = state.images_in_use()
    for d in images_dir().iterdir():
        if d == keep or d.name.startswith(".") or not (d / "image.json").exists():
            continue
        if str(d / "rootfs") in used:
            continue
        shutil.rmtree(d, ignore_errors=True)
        progress.note(f"removed the outdated image {d}")


def _in_image(root: Path, args: list[str], what: str, timeout: float = 900) -> None:
    run(
        [
            "systemd-nspawn",
            "-q",
            "-D",
            str(root),
            "--register=no",
            "--keep-unit",
            "--pipe",
            "--resolv-conf=copy-host",
            "--timezone=off",
            "-E",
            "DEBIAN_FRONTEND=noninteractive",
            "-E",
            "LC_ALL=C.UTF-8",
            *args,
        ],
        what=what,
        timeout=timeout,
    )


def _build(root: Path, pkgs: PackageList, progress: Reporter) -> None:
    mirror = debian_mirror()
    root.parent.mkdir(parents=True, exist_ok=True)
    with progress.step(f"image: debootstrap {SUITE} (minbase + {len(pkgs.base)} packages) from {mirror}"):
        p = run(
            ["debootstrap", "--variant=minbase", "--include=" + ",".join(pkgs.base), SUITE, str(root), mirror],
            what="image step debootstrap",
            check=False,
            timeout=900,
        )
    if p.returncode != 0:
        logf = root / "debootstrap" / "debootstrap.log"
        tail = logf.read_text(errors="replace").splitlines()[-8:] if logf.exists() else []
        raise LabError(
            "image step debootstrap failed (exit {}): {}".format(
                p.returncode, " | ".join(tail or (p.stderr or p.stdout).strip().splitlines()[-8:])
            )
        )
    security = mirror.rsplit("/debian", 1)[0] + "/debian-security"
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(DEBIAN_SOURCES.format(mirror=mirror, security=security))
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")  # no service starts during the build
    policy.chmod(0o755)
    with progress.step("image: apt-get update"):
        _in_image(root, ["apt-get", "-q", "update"], "image step apt-get update")
    _in_image(
        root,
        [
            "sh",
            "-c",
            "echo 'postfix postfix/main_mailer_type select Local only' | debconf-set-selections && "
            "echo 'postfix postfix/mailname string lab.test' | debconf-set-selections",
        ],
        "image step preseed postfix",
    )
    if pkgs.roles:
        try:
            with progress.step(f"image: apt-get install {len(pkgs.roles)} role packages"):
                _in_image(
                    root,
                    [
                        "apt-get",
                        "-q",
                        "-y",
                        "--no-install-recommends",
                        "-o",
                        "Dpkg::Options::=--force-confdef",
                        "-o",
                        "Dpkg::Options::=--force-confold",
                        "-o",
                        "Dpkg::Options::=--force-unsafe-io",  # no fsync: an interrupted build is discarded
                        "install",
                        *pkgs.roles,
                    ],
                    "image step apt-get install",
                )
        except LabError as e:
            msg = str(e)
            bad = packages_named(msg, pkgs.roles)
            hint = f" (package(s) named in the error: {', '.join(bad)})" if bad else ""
            raise LabError(f"{e}{hint}; fix {PACKAGES_FILE}") from None
    with progress.step("image: lab configuration (admin account, sshd, no outside traffic)"):
        _configure(root, pkgs.disabled)
    policy.unlink()


def _configure(root: Path, disabled: list[str]) -> None:
    script = " && ".join(
        [
            f"useradd --create-home --shell /bin/bash --groups sudo {IMAGE_ACCOUNT}",
            "systemctl mask " + " ".join(MASKED_UNITS),
            *(["systemctl disable " + " ".join(disabled)] if disabled else []),
            "apt-get clean",
        ]
    )
    _in_image(root, ["sh", "-c", script], "image step configure")
    (root / "etc/sudoers.d/dcops").write_text(f"{IMAGE_ACCOUNT} ALL=(ALL) NOPASSWD: ALL\n")
    (root / "etc/sudoers.d/dcops").chmod(0o440)
    (root / "etc/ssh/sshd_config.d/dcops-lab.conf").write_text(SSHD_DROPIN)
    unit = root / "etc/systemd/system/dcops-lab-hosts.service"
    unit.write_text(HOSTS_UNIT)
    wants = root / "etc/systemd/system/sysinit.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / unit.name).symlink_to(f"/etc/systemd/system/{unit.name}")
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()  # each lab host gets its own, recorded by the lab
    (root / "etc/dcops").mkdir(exist_ok=True)
    # no time servers outside the lab: the ntp role points chrony at the data centre
    chrony = root / "etc/chrony/chrony.conf"
    if chrony.exists():
        chrony.write_text(
            "\n".join(
                ln if not re.match(r"\s*(pool|server|sourcedir)\b", ln) else "# (dcops lab) " + ln
                for ln in chrony.read_text().splitlines()
            )
            + "\n"
        )
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    (root / "etc/resolv.conf").write_text("# dcops lab: no resolver outside the lab\nnameserver 127.0.0.1\n")
    (root / "etc/hostname").unlink(missing_ok=True)
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)

"""Print an HTML record to PDF with headless Chromium (`--print-to-pdf`).

Chromium lays out the CSS paged media the record uses: `@page` margin boxes with
`counter(page)` / `counter(pages)`, named pages, `break-after: avoid`. Its own header and
footer (URL, date) are switched off; the record carries its own. The browser runs with a
throwaway profile, no network, and its page has no scripts (the document's policy).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from laserlog.errors import LaserlogError

#: Where Chromium is looked for, after $LASERLOG_CHROMIUM.
CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
TIMEOUT_S = 300.0
FLAGS = ("--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--no-pdf-header-footer", "--hide-scrollbars")


def chromium() -> str:
    """Return the Chromium to print with, or raise saying how to get one."""
    named = os.environ.get("LASERLOG_CHROMIUM")
    for candidate in ((named,) if named else CANDIDATES):
        found = shutil.which(candidate)
        if found:
            return found
    where = f"$LASERLOG_CHROMIUM ({named})" if named else "/usr/bin/chromium or on PATH"
    raise LaserlogError(f"--format pdf needs headless Chromium, not found at {where}; "
                        "nothing was written (install it, e.g. `apt-get install chromium`, "
                        "or export --format html and print that)")


def print_pdf(html_file: Path, pdf_file: Path) -> None:
    """Print `html_file` to `pdf_file` (A4, as its CSS says) with headless Chromium."""
    browser = chromium()
    with tempfile.TemporaryDirectory(prefix="laserlog-chromium-") as profile:
        command = [browser, *FLAGS, f"--user-data-dir={profile}",
                   f"--print-to-pdf={pdf_file}", html_file.resolve().as_uri()]
        if os.geteuid() == 0:  # Chromium refuses to start as root with its sandbox
            command.insert(1, "--no-sandbox")
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S,
                                  stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            raise LaserlogError(f"Chromium ({browser}) did not print the record within "
                                f"{TIMEOUT_S:g} s; nothing was written") from None
        except OSError as exc:
            raise LaserlogError(f"cannot run Chromium ({browser}): {exc.strerror}; nothing "
                                "was written") from None
    if done.returncode != 0 or not pdf_file.is_file() or pdf_file.stat().st_size == 0:
        tail = " ".join(done.stderr.strip().splitlines()[-2:])[-300:]
        raise LaserlogError(f"Chromium ({browser}) could not print the record (exit "
                            f"{done.returncode}): {tail or 'no PDF written'}; nothing was written")

"""Test certificates made with the openssl CLI, for the scripts that test outgoing HTTPS
(webhooks.py, export_usage.py): two CAs, each having signed a certificate for 127.0.0.1."""

from __future__ import annotations

import os
import subprocess


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certs(work: str) -> str:
    """In `work`: trusted.pem (and .key), signed by the CA ca.pem, which the code under test is
    told to trust; rogue.pem (and .key), signed by rogue-ca.pem, which nothing trusts. Returns
    the path of ca.pem."""
    w = lambda name: os.path.join(work, name)  # noqa: E731
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    with open(w("ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    for leaf, ca in (("trusted", w("ca.pem")), ("rogue", w("rogue-ca.pem"))):
        openssl("req", "-x509", *ec, "-keyout", ca + ".key", "-out", ca, "-days", "2",
                "-subj", f"/CN=Bespin {leaf} test CA")
        openssl("req", *ec, "-keyout", w(leaf + ".key"), "-out", w(leaf + ".csr"), "-subj", "/CN=127.0.0.1")
        openssl("x509", "-req", "-in", w(leaf + ".csr"), "-CA", ca, "-CAkey", ca + ".key", "-CAcreateserial",
                "-out", w(leaf + ".pem"), "-days", "2", "-extfile", w("ext.cnf"))
    return w("ca.pem")

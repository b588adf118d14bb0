"""Which project file a folder holds, and which format a file's text is in.

`faasemu up` in a folder without `faasemu.yaml` serves the folder's SAM template, Serverless service,
OpenFaaS stack, Knative func.yaml, Azure host.json, netlify.toml or vercel.json instead (README
"Existing projects"); `-f FILE` names one, a YAML file recognised by its content, JSON and TOML by name.
"""

from __future__ import annotations

import os
import re
from typing import Literal

from faasemu.project.errors import ManifestError

Kind = Literal["sam", "serverless", "openfaas", "knative", "azure", "netlify", "vercel"]

# The names each tool looks for, in its own order of preference.
SAM_FILES = ("template.yaml", "template.yml")
SERVERLESS_FILES = ("serverless.yml", "serverless.yaml")
DEFAULT_NAMES = ("faasemu.yaml", "faasemu.yml")
OPENFAAS_FILES = ("stack.yml", "stack.yaml")  # faas-cli's default, then its other spelling
KNATIVE_FILES = ("func.yaml",)  # one function's folder, as `func create` writes it
AZURE_FILES = ("host.json",)  # the function app's root, beside function_app.py or v1 function folders
NETLIFY_FILES = ("netlify.toml",)
VERCEL_FILES = ("vercel.json",)
# Every format a folder may hold, in the order they are looked for, with the tool shown in errors.
PROJECT_FILES = ((SAM_FILES, "AWS SAM"), (SERVERLESS_FILES, "Serverless Framework"),
                 (OPENFAAS_FILES, "OpenFaaS"), (KNATIVE_FILES, "Knative Functions"), (AZURE_FILES, "Azure Functions"),
                 (NETLIFY_FILES, "Netlify"), (VERCEL_FILES, "Vercel"))

_SAM_HEADER = re.compile(r"^AWSTemplateFormatVersion\s*:", re.MULTILINE)
_TRANSFORM = re.compile(r"^Transform\s*:", re.MULTILINE)
_SERVICE = re.compile(r"^service\s*:", re.MULTILINE)
_PROVIDER = re.compile(r"^provider\s*:", re.MULTILINE)
_OPENFAAS = re.compile(r"^provider\s*:\s*(?:\n[ \t]+(?:#.*)?\S.*)*?\n[ \t]+name\s*:\s*[\"']?openfaas\b", re.MULTILINE)
_FUNCTIONS = re.compile(r"^functions\s*:", re.MULTILINE)
_SPEC_VERSION = re.compile(r"^specVersion\s*:", re.MULTILINE)
_RUNTIME = re.compile(r"^runtime\s*:", re.MULTILINE)
# What Vercel's Python runtime serves from api/*.py: a `handler` class (BaseHTTPRequestHandler) or an `app`.
_VERCEL_ENTRY = re.compile(r"^(?:class\s+handler\b|app\s*[:=])", re.MULTILINE)
ZERO_CONFIG = "vercel.json"  # the name a zero-config Vercel project's (absent) file is read under


def detect(text: str, path: str = "") -> Kind | None:
    """The format of `text` (read from `path`), or None: a faasemu manifest, whose top-level keys are none of theirs."""
    named = os.path.basename(path)  # JSON and TOML files are known by their names, as their tools find them
    if named in AZURE_FILES:
        return "azure"
    if named in NETLIFY_FILES:
        return "netlify"
    if named in VERCEL_FILES:
        return "vercel"
    if _FUNCTIONS.search(text) and (_OPENFAAS.search(text) or (
            os.path.basename(path) in OPENFAAS_FILES and not _SERVICE.search(text))):
        return "openfaas"  # before Serverless: a stack.yml has `provider:` too, but never `service:`
    if _RUNTIME.search(text) and not _FUNCTIONS.search(text) and (
            os.path.basename(path) in KNATIVE_FILES or _SPEC_VERSION.search(text)):
        return "knative"
    if _SAM_HEADER.search(text) or (_TRANSFORM.search(text) and "AWS::Serverless-2016-10-31" in text):
        return "sam"
    if _SERVICE.search(text) and _PROVIDER.search(text):
        return "serverless"
    return None


def project_file(manifest: str) -> str | None:
    """The platform's project file to read instead of a missing default manifest, or None.

    Only the default name falls back: a missing `-f custom.yaml` is an error, not a guess.
    """
    if os.path.basename(manifest) not in DEFAULT_NAMES:
        return None
    folder = os.path.dirname(manifest)
    found = [(name, tool) for names, tool in PROJECT_FILES  # each tool's first name present
             for name in [next((n for n in names if os.path.isfile(os.path.join(folder, n))), None)] if name]
    if len(found) > 1:
        shown = " and ".join(f"{name} ({tool})" for name, tool in found)
        choices = " or ".join(f"-f {name}" for name, _ in found)
        raise ManifestError(manifest, None,
                            f"no such file, and the folder holds both {shown}; choose one with {choices}")
    if found:
        return os.path.join(folder, found[0][0])
    return os.path.join(folder, ZERO_CONFIG) if vercel_zero_config(folder) else None


def vercel_zero_config(folder: str) -> bool:
    """A Vercel project without vercel.json (Vercel's zero configuration): an `api/` folder whose Python
    files define a `handler` class or an `app`, as Vercel's Python runtime requires."""
    api = os.path.join(folder, "api")
    if not os.path.isdir(api):
        return False
    for where, dirs, files in os.walk(api):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        for name in files:
            if name.endswith(".py") and not name.startswith((".", "_")):
                try:
                    with open(os.path.join(where, name), encoding="utf-8", errors="replace") as file:
                        if _VERCEL_ENTRY.search(file.read()):
                            return True
                except OSError:
                    continue
    return False

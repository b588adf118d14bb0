"""The payment API (faasemu's effect sink stands in for it), and a record that fails once: the
payment provider times out on its first try, as happens."""

import json
import os
import urllib.request


def charge(name, payment, key=None):
    body = json.dumps({"order": payment["order"], "amount": payment["amount"]}).encode()
    headers = {"content-type": "application/json", **({"Idempotency-Key": key} if key else {})}
    request = urllib.request.Request(f"{os.environ['FAASEMU_SINK_URL']}/{name}", body, headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def first_try_fails(record, payment):
    if payment.get("flaky") and record["attributes"]["ApproximateReceiveCount"] == "1":
        raise TimeoutError(f"the payment provider timed out for {payment['order']}")

"""EventBridge-triggered producers: an order asks for an invoice by emitting `invoice.requested`.

`deterministic` names the event after its input ("invoice-" + the order event's id), so a duplicate
of its input re-emits the same event; `broker_ids` leaves the id to the broker, which gives a new
one on every PutEvents call, so a duplicate of its input is a second invoice request.
"""

import json
import os
import urllib.request


def _emit(event):
    request = urllib.request.Request(os.environ["FAASEMU_EVENTS_URL"], data=json.dumps(event).encode(),
                                     headers={"content-type": "application/cloudevents+json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def deterministic(event, context):
    _emit({"id": "invoice-" + event["id"], "type": "invoice.requested", "source": "orders",
           "data": {"order": event["detail"]["order"], "amount": event["detail"]["amount"]}})


def broker_ids(event, context):
    _emit({"type": "invoice.requested", "source": "orders-random",
           "data": {"order": event["detail"]["order"], "amount": event["detail"]["amount"]}})

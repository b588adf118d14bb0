# Function
import logging

from cloudevents.core.v1.event import CloudEvent


def new():
    return Function()


class Function:
    async def handle(self, scope, receive, send):
        """Confirm a placed order: the reply event goes back to the broker, which routes it on."""
        request = scope["event"]
        order = request.get_data()
        logging.info("confirming order %s", order["id"])
        response = CloudEvent(
            attributes={
                "type": "order.confirmed",
                "source": "confirm",
                "id": f"confirmed-{request.get_id()}",
            },
            data={"order": order["id"], "total": order["quantity"] * order["price"]},
        )
        await send(response)

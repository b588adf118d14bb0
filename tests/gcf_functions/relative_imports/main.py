"""main.py at the source root importing its neighbours relatively, and plainly."""

from .greetings import greet
from . import greetings
import plain_neighbour


def hello(request):
    return {"greeting": greet(request.args.get("name", "world")), "module": greetings.__name__,
            "plain": plain_neighbour.VALUE, "name": __name__}

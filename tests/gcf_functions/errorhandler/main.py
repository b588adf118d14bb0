"""`@functions_framework.errorhandler`: a Flask error handler the function's exceptions reach."""

import functions_framework


class OutOfStock(Exception):
    pass


@functions_framework.errorhandler(ZeroDivisionError)
def teapot(error):
    return "I'm a teapot", 418


@functions_framework.errorhandler(OutOfStock)
def out_of_stock(error):
    return {"error": "out of stock", "item": str(error)}, 409, {"Retry-After": "60"}


def divide(request):
    return str(int(request.args.get("n", "1")) / int(request.args.get("by", "0")))


def order(request):
    item = request.args.get("item", "")
    if item == "crash":
        raise KeyError("not handled by any errorhandler")
    raise OutOfStock(item)

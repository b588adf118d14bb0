"""Typed functions: the JSON body becomes an input class (`from_dict`), the result is `to_dict`-ed."""

import flask

import functions_framework


class Order:
    def __init__(self, item, quantity):
        self.item = item
        self.quantity = quantity

    @staticmethod
    def from_dict(obj):
        if not isinstance(obj.get("quantity"), int):
            raise ValueError("quantity must be an integer")
        return Order(obj["item"], obj["quantity"])

    def to_dict(self):
        return {"item": self.item, "quantity": self.quantity}


class Receipt:
    def __init__(self, total):
        self.total = total

    def to_dict(self):
        return {"total": self.total, "currency": "EUR"}


class NoToDict:
    pass


@functions_framework.typed(Order)
def by_decorator(order):
    if order.item == "abort":
        flask.abort(400)
    return Receipt(order.quantity * 3)


@functions_framework.typed
def by_annotation(order: Order):
    return order


@functions_framework.typed(Order)
def returns_builtin(order):
    return f"{order.quantity} x {order.item}"


@functions_framework.typed(Order)
def returns_none(order):
    return None


@functions_framework.typed(Order)
def returns_no_to_dict(order):
    return NoToDict()

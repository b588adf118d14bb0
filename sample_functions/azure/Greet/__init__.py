"""An HTTP function in the Python v1 programming model: function.json beside it declares the bindings."""

import azure.functions as func


def main(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    name = req.params.get("name", "world")
    return func.HttpResponse(f"Hello, {name}, from {context.function_name}.")

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="azure-ok", methods=["GET"])
def ok(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")

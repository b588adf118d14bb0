import functions_framework


@functions_framework.http
def ok(request):
    return "ok"

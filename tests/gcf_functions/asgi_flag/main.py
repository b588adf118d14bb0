"""An undecorated `async def`: functions-framework runs it only with --asgi (FUNCTION_USE_ASGI)."""


async def handler(request):
    return {"awaited": True, "method": request.method}

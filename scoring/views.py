from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from scoring.selectors import portfolio_list
from scoring.services.health import broker_status, database_status


@require_GET
def healthz(request):
    """Database and broker status as JSON; 503 when either is down."""
    checks = {"database": database_status(), "broker": broker_status()}
    ok = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ok" if ok else "error", **checks}, status=200 if ok else 503)


def home(request):
    portfolios = portfolio_list(user=request.user) if request.user.is_authenticated else []
    return render(request, "scoring/home.html", {"portfolios": portfolios})

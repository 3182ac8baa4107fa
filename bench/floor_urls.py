"""The service's URLs plus ``/bench/floor/``: the DRF token-auth floor of realtime_latency.py."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from riskapp.urls import urlpatterns as service_urlpatterns


class Floor(APIView):
    """What every DRF endpoint pays before its own work: our token authentication
    (the default classes), IsAuthenticated, the throttles, content negotiation, a
    JSON response."""

    def post(self, request):
        return Response({"ok": True, "user": request.user.pk}, status=201)


urlpatterns = [path("bench/floor/", Floor.as_view()), *service_urlpatterns]

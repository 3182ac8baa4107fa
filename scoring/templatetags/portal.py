"""Template tags of the portal."""

from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def navigation_capabilities(context):
    """What the navigation offers, for pages not rendered by ``scoring.views.page`` (the
    404 and 403 handlers, the login page), so they keep the whole navigation."""
    from scoring.views import capabilities

    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return capabilities(user)

"""Pure PyTorch/numpy credit models. Never imports Django (a test asserts it).

Not to be confused with ``scoring/models.py``, the Django ORM models.
"""

"""Code stores: one git repository per algorithm (base.py: the contract; local.py, gitea.py: backends)."""

"""Login: the page an anonymous visitor lands on (app/main.py shows the same form at any page's
address while signed out)."""
from components.login_form import login_form

login_form()

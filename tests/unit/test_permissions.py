"""Each role allowed and denied on each action: the matrix is explicit, deny by default."""
import pytest

from app.auth import PERMISSIONS, Action, Actor, Role, can, require
from app.errors import PermissionDenied

A = Action
EXPECTED = {
    Role.VIEWER: {A.VIEW_SHOWCASE, A.VIEW_HISTORY, A.VIEW_CATALOG, A.VIEW_SERVICES},
    Role.OPERATOR: {A.VIEW_SHOWCASE, A.VIEW_HISTORY, A.VIEW_CATALOG, A.VIEW_SERVICES, A.VIEW_ALL_HISTORY,
                    A.UPLOAD, A.DEPLOY, A.MANAGE_SERVICES},
    Role.ADMIN: set(Action),
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", list(Action))
def test_role_action_matrix(role, action):
    actor = Actor("someone", role)
    allowed = action in EXPECTED[role]
    assert can(actor, action) is allowed
    if allowed:
        assert require(actor, action) is actor
    else:
        with pytest.raises(PermissionDenied):
            require(actor, action)


@pytest.mark.parametrize("action", list(Action))
def test_anonymous_is_denied_everything(action):
    assert not can(None, action)
    with pytest.raises(PermissionDenied, match="anonymous"):
        require(None, action)


def test_unknown_role_is_denied():
    assert not can(Actor("x", "superuser"), Action.VIEW_SHOWCASE)  # type: ignore[arg-type]
    assert set(PERMISSIONS) == set(Role)

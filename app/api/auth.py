"""Tokens for integrators and a who-am-I endpoint."""
from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, fields

from app.api import require_login
from app.org import services as org
from app.org.schemas import MeSchema

PREFIX = ""
blp = Blueprint("api_auth", __name__, description="Authentication")


class TokenRequestSchema(Schema):
    username = fields.String(required=True)
    password = fields.String(required=True, load_only=True)
    name = fields.String(load_default="api")


class TokenSchema(Schema):
    token = fields.String()
    token_type = fields.String()


@blp.route("/tokens")
class Tokens(MethodView):
    @blp.arguments(TokenRequestSchema)
    @blp.response(201, TokenSchema)
    def post(self, payload):
        """Exchange a username and password for a bearer token (shown once)."""
        user = org.authenticate(payload["username"], payload["password"], request.remote_addr)
        if user is None:
            abort(401, message="wrong username or password")
        return {"token": org.create_api_token(user, payload["name"]), "token_type": "Bearer"}


@blp.route("/me")
class Me(MethodView):
    @blp.response(200, MeSchema)
    def get(self):
        """The caller, with their roles and units."""
        return require_login()

"""Minting reset and sign-in tokens, shared by accounts and by email that carries a login link."""

from __future__ import annotations

import secrets

from ..domain.credentials import (
    CODE_ALPHABET,
    CODE_LENGTH,
    AccountPolicy,
    AccountToken,
    MagicLink,
    TokenPurpose,
    hash_code,
    hash_token,
)
from ..domain.members import Member
from ..ports.storage import UnitOfWork
from ._context import Context


def mint_token(
    context: Context, uow: UnitOfWork, member: Member, purpose: TokenPurpose, policy: AccountPolicy
) -> MagicLink | str:
    """Store a new token of ``member`` in ``uow``; a magic link (with code), or a reset URL.

    The secret exists in clear only in the returned value; storage keeps its SHA-256.
    """
    secret = secrets.token_urlsafe(32)  # 256 bits
    now = context.now()
    base = context.base_url(uow)
    token_id = context.ids.new("tok")
    if purpose is TokenPurpose.PASSWORD_RESET:
        uow.account_tokens.add(
            AccountToken(
                token_id, member.id, purpose, hash_token(secret), now, now + policy.reset_lifetime
            )
        )
        return f"{base}{policy.reset_path}?token={secret}"
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    expires = now + policy.magic_link_lifetime
    uow.account_tokens.add(
        AccountToken(
            token_id,
            member.id,
            purpose,
            hash_token(secret),
            now,
            expires,
            code_hash=hash_code(token_id, code),
        )
    )
    return MagicLink(
        f"{base}{policy.magic_link_path}?token={secret}",
        secret,
        f"{code[:4]}-{code[4:]}",
        expires,
    )

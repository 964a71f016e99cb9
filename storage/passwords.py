"""The password policy for console users (OWASP ASVS 2.1): long enough, not a common or breached
password or a small variation of one, not the user's own name. Checked offline."""

from __future__ import annotations

import re

MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024
MIN_DISTINCT_CHARS = 5

# The words at the root of the most common breached passwords (the top of public breach
# corpora); a password that is one of them, repeated or with digits and symbols around it, is
# refused: "Password2024!", "qwertyqwerty", "123456789012".
COMMON_ROOTS = frozenset("""
password passw0rd p@ssword p@ssw0rd pass passwd secret letmein welcome welcome1 login admin
administrator root master changeme default guest test tester user username qwerty qwertz
azerty asdf asdfgh asdfghjkl zxcvbn zxcvbnm qazwsx 1q2w3e 1q2w3e4r 1qaz2wsx qwertyuiop
abc abcd abcdef abcdefg abcdefgh iloveyou loveyou lovely love princess dragon monkey shadow
sunshine football baseball soccer hockey superman batman starwars pokemon michael jennifer
jordan hunter ranger buster killer trustno1 whatever freedom flower summer winter spring
autumn charlie daniel thomas george hello hello1 hellohello computer internet samsung apple
google facebook linkedin microsoft shelfcast store shop forecast demand access company
mypassword yourpassword password1 qwerty1 abc123 iloveyou1 letmein1 zaq12wsx 1234qwer
qwer1234 asdf1234 zxcv1234 q1w2e3r4 a1b2c3d4 aa12345678 omg lol secret1 mustang
""".split())

_AROUND = re.compile(r"^[\W\d_]*(.*?)[\W\d_]*$")


def password_problem(password: str, *, name: str) -> str | None:
    """Why `password` is not acceptable for user `name` (one line), or None if it is."""
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        return (f"the password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters, "
                f"got {len(password)}")
    folded = password.casefold()
    if name and name.casefold() in folded:
        return "the password must not contain the user name"
    if len(set(folded)) < MIN_DISTINCT_CHARS:
        return (f"the password has fewer than {MIN_DISTINCT_CHARS} different characters; "
                "choose a longer phrase")
    if _is_common(folded):
        return "the password is a common or breached one (or one with digits added); choose " \
               "a phrase of several words"
    return None


def _is_common(folded: str) -> bool:
    """One of the common roots, alone, repeated, or with digits and symbols around it; or only
    digits and symbols."""
    root = _AROUND.fullmatch(folded).group(1)
    if not root:  # only digits and symbols
        return True
    for length in range(1, len(root) // 2 + 1):  # "abcabcabc" -> "abc"
        if len(root) % length == 0 and root[:length] * (len(root) // length) == root:
            root = root[:length]
            break
    return root in COMMON_ROOTS or root.replace(" ", "") in COMMON_ROOTS

"""Where the brokers are: one AMQP address, or the several nodes of a RabbitMQ cluster.

`LLAMA_AGENTS_AMQP_URL` (or the `url` argument) takes one URL or several, comma-separated,
in either of two forms (they can be mixed):

    amqp://user:pass@node1:5672/,amqp://user:pass@node2:5672/     several full URLs
    amqp://user:pass@node1:5672,node2:5673,node3:5674/vhost        one URL, several hosts

In the second form every host shares the credentials, the vhost and the query. The setting
is checked once, when the queue object is made, so a typo is a `ConfigurationError` there
rather than a connection error at the first publish. A password holding `,`, `/` or `@`
must be percent-encoded (`%2C`, `%2F`, `%40`), as in any URL. Whatever is shown in an error
or a log has its password replaced by `***`.
"""

from __future__ import annotations

import re

from yarl import URL

from llama_agents.errors import ConfigurationError

#: The URL schemes RabbitMQ clients speak: plain AMQP 0-9-1 and AMQP over TLS.
SCHEMES = frozenset({"amqp", "amqps"})

#: A comma that starts another full URL (`...,amqp://`), as opposed to one between hosts.
_NEXT_URL = re.compile(r",\s*(?=[A-Za-z][A-Za-z0-9+.\-]*://)")
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<authority>[^/?#]*)(?P<rest>.*)$")
#: `scheme://user:password@`: what `hide_passwords` blanks out in text it cannot parse.
_PASSWORD = re.compile(r"(?P<before>://[^/@:,]*:)[^@/]*@")

_FORMS = (
    "give one amqp:// (or amqps://) URL, several separated by commas, or one URL with "
    "several hosts: amqp://user:password@host1:5672,host2:5672/vhost"
)


def parse_addresses(setting: str) -> tuple[URL, ...]:
    """Every broker address `setting` names, in its order, each once.

    `ConfigurationError` for anything that is not such a list, quoting the setting with its
    passwords hidden.
    """
    text = setting.strip()
    if not text:
        raise ConfigurationError(f"the AMQP URL is empty; {_FORMS}")
    addresses: list[URL] = []
    for piece in _NEXT_URL.split(text):
        addresses.extend(_expand(piece.strip(), text))
    return tuple(dict.fromkeys(addresses))


def _expand(piece: str, setting: str) -> list[URL]:
    """One URL of the setting, split into one URL per host."""
    where = "" if piece == setting else f"in {hide_passwords(piece)!r}: "
    match = _URL.match(piece)
    if match is None:
        raise _bad(setting, f"{where}not a URL")
    scheme = match["scheme"].lower()
    if scheme not in SCHEMES:
        raise _bad(setting, f"{where}{scheme}:// is not AMQP")
    if "," in match["rest"]:
        raise _bad(setting, f"{where}a comma after the host list must start another URL")
    userinfo, at, hosts = match["authority"].rpartition("@")
    prefix = f"{scheme}://{userinfo}{at}"
    urls = []
    for host in hosts.split(","):
        host = host.strip()
        if not host:
            raise _bad(setting, f"{where}an empty host")
        try:
            url = URL(prefix + host + match["rest"])
        except ValueError as exc:
            raise _bad(setting, f"{where}host {host!r}: {exc}") from None
        if not url.host:
            raise _bad(setting, f"{where}host {host!r} has no name")
        urls.append(url)
    return urls


def _bad(setting: str, problem: str) -> ConfigurationError:
    return ConfigurationError(
        f"cannot read the AMQP URL {hide_passwords(setting)!r} ({problem}); {_FORMS}"
    )


def redact_url(url: URL) -> str:
    """One address with its password hidden, for logs and error messages."""
    if url.password:
        url = url.with_password("***")
    return str(url)


def redact(setting: str) -> str:
    """A URL setting (one address or several) with every password hidden."""
    try:
        return ",".join(redact_url(url) for url in parse_addresses(setting))
    except ConfigurationError:
        return hide_passwords(setting)


def hide_passwords(text: str) -> str:
    """`text` with whatever sits where a URL keeps its password replaced by `***`.

    For text that may not parse as URLs (the setting a `ConfigurationError` quotes).
    """
    return _PASSWORD.sub(r"\g<before>***@", text)

"""Danbooru's live JSON API as a source: ``poke fetch danbooru --tags TAG ...``.

A query becomes ``/posts.json?tags=...&limit=200`` pages walked with ``page=b<lowest id seen>`` (no
1000-page cap). Anonymous and Member accounts may send only 2 tag terms (HTTP 422 beyond; Gold 6,
Platinum 12: ``tag_limit``), so at most that many go to the server (positive tags first, then ``-tag``
excludes; ``rating:`` and the other metatags Danbooru does not count are always sent) and the rest are
applied client-side, with exact tag matching.

Every matching post becomes a ledger row (source ``danbooru``, source id = the post id, url = its
``file_url``, or ``large_file_url`` for the ``sample`` variant). Posts that cannot be fetched are rows too,
``skipped`` with a reason: ``deleted``, ``banned``, ``hidden`` (no ``file_url``/``md5``: censored or
Gold-only), ``not-an-image:<ext>`` (mp4, webm, zip, swf, ugoira). With a catalog, the class comes from the
post's character tags: one catalog class -> that class; several -> ``class_name=''`` with
``meta.multi_class`` (left out of classification by default); none -> ``skipped`` ``no-catalog-class``.
Then the shared downloader drains the planned rows, verifying Danbooru's md5.

Listing is resumable: after each page the lowest id seen is saved in the ledger's ``meta`` table, so a
rerun of the same query continues where it stopped; once a query was listed to its end, a rerun asks
only for what is new: ``page=a<newest id planned>`` (the posts just above it), page after page upwards,
the floor saved after each page, so every answer holds new posts only and nothing old is listed again.

Credentials (``login``, ``api_key``) go as HTTP Basic auth to the API host only; they are never logged,
printed or stored (the config hides them from its ``repr``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from pokedata.errors import UserError
from pokedata.fetch.config import ANONYMOUS_TAG_LIMIT, DEFAULT_BASE_URL, DanbooruOptions
from pokedata.fetch.http import FetchError, has_credentials, origin_of, redact_url
from pokedata.fetch.intake import FetchSummary, Outcome
from pokedata.ledger import PLANNED, SKIPPED, Candidate, Ledger
from pokedata.verify import IMAGE_EXTENSIONS, check_max_pixels

log = logging.getLogger(__name__)

SOURCE = "danbooru"
DEFAULT_FILE_HOST = "cdn.donmai.us"
PAGE_SIZE = 200
NON_IMAGE_EXTS = frozenset({"mp4", "webm", "zip", "swf", "ugoira", "gif_video", "mp3", "avi"})
VARIANTS = ("original", "sample")
_RATING_WORDS = {"general": "g", "sensitive": "s", "questionable": "q", "explicit": "e"}
RATINGS = ("g", "s", "q", "e")
# Metatags must go to the server (they cannot be checked client-side); order:/limit: break the paging.
_METATAGS = frozenset({
    "age", "approver", "child", "commenter", "date", "downvotes", "duration", "embedded", "fav", "favcount",
    "filesize", "filetype", "has", "height", "id", "is", "md5", "mpixels", "noter", "ordfav", "parent", "pixiv",
    "pixiv_id", "pool", "ratio", "score", "source", "status", "tagcount", "upvote", "user", "width",
})  # fmt: skip
# Danbooru's PostQuery::UNLIMITED_METATAGS: these do not count against the account's tag limit.
FREE_METATAGS = frozenset({
    "status", "rating", "limit", "is", "id", "date", "age", "filesize", "filetype", "parent", "child", "md5",
    "width", "height", "duration", "mpixels", "ratio", "score", "upvote", "downvotes", "favcount", "embedded",
    "tagcount", "pixiv_id", "pixiv",
})  # fmt: skip
_FORBIDDEN_METATAGS = {"order": "paging needs id order", "limit": "the page size is fixed at 200",
                       "rating": "use --rating instead"}  # fmt: skip


@dataclass(frozen=True)
class DanbooruConfig(DanbooruOptions):
    """Options of ``poke fetch danbooru`` (live API): the fields of :class:`DanbooruOptions` (their defaults
    are the command's) and an HTTP config to start from. Validated by :meth:`validate`."""

    http: Any = None  # a pokedata.fetch.http.HttpConfig to start from (tests: fast backoff)

    def validate(self) -> None:
        check_max_pixels(self.max_pixels)
        if not (math.isfinite(self.api_rate) and math.isfinite(self.file_rate)):
            raise UserError("--api-rate and --file-rate must be finite numbers (requests per second)")
        if self.api_rate <= 0 or self.file_rate <= 0:
            raise UserError("--api-rate and --file-rate must be positive (requests per second)")
        if self.variant not in VARIANTS:
            raise UserError(f"--variant {self.variant!r} is not one of {', '.join(VARIANTS)}")
        if self.catalog and self.class_name:
            raise UserError(
                "--catalog and --class both set", hint="label by the catalog or by one class, not both"
            )
        if not self.tags and not self.catalog:
            raise UserError(
                "no --tags given", hint="pass --tags TAG (repeatable), or --catalog to fetch every class"
            )
        if self.limit is not None and self.limit < 1:
            raise UserError(f"--limit {self.limit} must be at least 1")
        if self.tag_limit < 1:
            raise UserError(f"--tag-limit {self.tag_limit} must be at least 1 (anonymous/Member accounts: 2)")
        if bool(self.login) != bool(self.api_key):
            raise UserError(
                "Danbooru credentials need both a login and an API key",
                hint="set DANBOORU_LOGIN and DANBOORU_API_KEY (or --login and --api-key), or neither",
            )
        check_base_url(self.base_url)
        normalise_ratings(self.rating)
        for t in (*self.tags, *self.exclude):
            check_tag(t)

    @property
    def api_host(self) -> str:
        return urlparse(self.base_url).hostname or ""

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.login, self.api_key) if self.login and self.api_key else None


def check_base_url(base_url: str) -> None:
    """``--base-url`` must be a plain http(s) URL: credentials in it (``user:key@``) are refused, never
    stored or echoed (they would end up in every post's ``page_url`` and in logs)."""

    if has_credentials(base_url):
        raise UserError(
            f"--base-url {redact_url(base_url)!r} holds credentials (user:key@); they are never sent that way",
            hint="drop them from the URL and pass --login/--api-key (or DANBOORU_LOGIN / DANBOORU_API_KEY)",
        )
    parsed = urlparse(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or not origin_of(base_url):
        raise UserError(f"--base-url {base_url!r} is not an http(s) URL", hint=f"e.g. {DEFAULT_BASE_URL}")


def normalise_ratings(ratings: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``("general", "s")`` -> ``("g", "s")``; accepts comma lists; raises UserError on anything else."""
    out: list[str] = []
    for part in (p.strip().lower() for r in ratings for p in str(r).split(",")):
        if not part:
            continue
        code = _RATING_WORDS.get(part, part)
        if code not in RATINGS:
            raise UserError(
                f"--rating {part!r} is not a Danbooru rating",
                hint="use g (general), s (sensitive), q (questionable), e (explicit), e.g. --rating g,s",
            )
        if code not in out:
            out.append(code)
    return tuple(out)


def check_tag(tag: str) -> None:
    """Reject what Danbooru would not read as one tag (spaces) and metatags we cannot page with."""
    t = tag.strip()
    if not t or any(ch.isspace() for ch in t):
        raise UserError(f"--tags {tag!r} is not a Danbooru tag", hint="tags use underscores: e.g. mr._mime")
    prefix = t.lstrip("-").split(":", 1)[0].lower()
    if ":" in t and prefix in _FORBIDDEN_METATAGS:
        raise UserError(
            f"--tags {tag!r}: the {prefix}: metatag is not supported", hint=_FORBIDDEN_METATAGS[prefix]
        )


def is_metatag(tag: str) -> bool:
    return ":" in tag and tag.lstrip("-").split(":", 1)[0].lower() in _METATAGS


def is_free_metatag(tag: str) -> bool:
    """A metatag Danbooru does not count against the tag limit (``rating:``, ``score:``, ...)."""
    return ":" in tag and tag.lstrip("-").split(":", 1)[0].lower() in FREE_METATAGS


# -- queries ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Query:
    """One server query plus what must be checked client-side."""

    server_terms: tuple[str, ...]  # sent as tags=
    client_tags: tuple[str, ...] = ()  # every one must be on the post
    client_exclude: tuple[str, ...] = ()  # none may be on the post
    client_ratings: tuple[str, ...] = ()  # the post's rating must be one of these (() = any)
    class_name: str | None = None  # fixed label (--class)

    @property
    def key(self) -> str:
        """Stable identity of the query (its listing cursor is stored under it)."""
        return json.dumps([self.server_terms, self.client_tags, self.client_exclude, self.client_ratings],
                          separators=(",", ":"))  # fmt: skip

    @property
    def text(self) -> str:
        client = [*self.client_tags, *(f"-{t}" for t in self.client_exclude)]
        if self.client_ratings:
            client.append("rating:" + ",".join(self.client_ratings))
        s = " ".join(self.server_terms)
        return f"{s}  (client-side: {' '.join(client)})" if client else s

    def accepts(self, post: dict[str, Any]) -> bool:
        tags = set(str(post.get("tag_string", "")).split())
        if not set(self.client_tags) <= tags or tags & set(self.client_exclude):
            return False
        return not self.client_ratings or post.get("rating") in self.client_ratings


def build_query(
    tags: tuple[str, ...] | list[str],
    exclude: tuple[str, ...] | list[str] = (),
    ratings: tuple[str, ...] = (),
    *,
    tag_limit: int = ANONYMOUS_TAG_LIMIT,
    class_name: str | None = None,
) -> Query:
    """Split tags between the server (at most ``tag_limit`` counted terms) and the client.

    Metatags go first (they only work server-side); those in :data:`FREE_METATAGS` (``rating:``,
    ``score:``, ...) do not count against the limit. Then positive tags in the order given, then ``-tag``
    excludes, while room is left; the rest is checked client-side by exact tag match. The rating is sent as
    ``rating:g,s`` and checked again on our side.
    """
    tags = [t.strip() for t in tags if t.strip()]
    exclude = [t.strip().lstrip("-") for t in exclude if t.strip()]
    metas = [t for t in tags if is_metatag(t)]
    plain = [t for t in tags if not is_metatag(t)]
    counted = [t for t in metas if not is_free_metatag(t)]
    if len(counted) > tag_limit:
        raise UserError(
            f"--tags has {len(counted)} metatags that count against the tag limit ({' '.join(counted)}) but the "
            f"account may send only {tag_limit} tags per query, and metatags cannot be applied client-side",
            hint="drop some metatags, or raise --tag-limit for a Gold (6) / Platinum (12) account",
        )
    server = list(metas)
    used = len(counted)
    client_tags, client_exclude = [], []
    for t in plain:
        if used < tag_limit:
            server.append(t)
            used += 1
        else:
            client_tags.append(t)
    for t in exclude:
        if used < tag_limit:
            server.append(f"-{t}")
            used += 1
        else:
            client_exclude.append(t)
    client_ratings: tuple[str, ...] = ()
    if ratings and len(ratings) < len(RATINGS):
        server.append("rating:" + ",".join(ratings))  # free: never counts against the limit
        client_ratings = tuple(ratings)
    return Query(tuple(server), tuple(client_tags), tuple(client_exclude), client_ratings, class_name)


# -- validating what the API sends ------------------------------------------------------------------
MD5_RE = re.compile(r"[0-9a-fA-F]{32}")
MAX_POST_ID = 2**63 - 1
_STR_FIELDS = ("tag_string", "tag_string_character", "tag_string_copyright", "tag_string_artist",
               "tag_string_general", "created_at", "source", "rating")  # fmt: skip
_INT_FIELDS = ("score", "image_width", "image_height", "file_size")
_URL_FIELDS = ("file_url", "large_file_url")


def known_exts() -> frozenset[str]:
    """File extensions a post may have: the images we store and the ones we skip as not images."""

    return IMAGE_EXTENSIONS | NON_IMAGE_EXTS


def post_id(post: Any) -> int | None:
    """A post's id as a positive int, or None when it is missing or not a plain integer (``"abc"``,
    ``null``, ``1e400``, ``true``, ``-1``, ``3.5``)."""
    if not isinstance(post, dict):
        return None
    v = post.get("id")
    if isinstance(v, bool):
        return None
    if isinstance(v, str) and v.isascii() and v.isdigit() and len(v) <= 19:
        v = int(v)
    if isinstance(v, int) and 0 < v <= MAX_POST_ID:
        return v
    return None


def valid_md5(value: Any) -> bool:
    return isinstance(value, str) and MD5_RE.fullmatch(value) is not None


def valid_ext(value: Any) -> bool:
    return isinstance(value, str) and value.lower() in known_exts()


def bad_field(post: dict[str, Any]) -> str | None:
    """The first field of an API post that is not what Danbooru sends, or None when the post is sane.

    Checked before anything is built from the post (paths, URLs, ledger rows): ``md5`` is 32 hex digits,
    ``file_ext`` a known extension, the file URLs http(s) strings without blanks, tag strings strings,
    numbers finite integers. Missing values are fine (hidden posts have no md5 or URL).
    """
    if post_id(post) is None:
        return "id"
    md5 = post.get("md5")
    if md5 not in (None, "") and not valid_md5(md5):
        return "md5"
    ext = post.get("file_ext")
    if ext not in (None, "") and not valid_ext(ext):
        return "file_ext"
    for key in _URL_FIELDS:
        url = post.get(key)
        if url in (None, ""):
            continue
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            return key
        if any(ch.isspace() or not ch.isprintable() for ch in url) or len(url) > 4096:
            return key
    for key in _STR_FIELDS:
        if post.get(key) is not None and not isinstance(post.get(key), str):
            return key
    for key in _INT_FIELDS:
        v = post.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or abs(v) > MAX_POST_ID):
            return key
    return None


# -- labelling and skip reasons ------------------------------------------------------------------------
def skip_reason(post: dict[str, Any], variant: str = "original") -> str | None:
    """Why a post cannot be fetched, or None."""
    if post.get("is_deleted"):
        return "deleted"
    if post.get("is_banned"):
        return "banned"
    ext = str(post.get("file_ext") or "").lower()
    if ext in NON_IMAGE_EXTS:
        return f"not-an-image:{ext}"
    url = post.get("large_file_url" if variant == "sample" else "file_url") or post.get("file_url")
    if not post.get("md5") or not url:
        return "hidden"
    return None


class Labeller:
    """Post -> class label, from a fixed class or the catalog's character tags."""

    def __init__(self, *, tag_to_class: dict[str, str] | None = None, class_name: str | None = None):
        self.tag_to_class = tag_to_class
        self.class_name = class_name

    @property
    def signature(self) -> str:
        """Identity of the labelling (a listing cursor is only reused under the same labels)."""

        if self.class_name is not None:
            return f"class:{self.class_name}"
        if self.tag_to_class is None:
            return "none"
        items = json.dumps(sorted(self.tag_to_class.items()), ensure_ascii=False).encode()
        return "catalog:" + hashlib.sha1(items).hexdigest()[:12]

    def label(self, post: dict[str, Any]) -> tuple[str, dict[str, Any], str | None]:
        """(class name, extra meta, skip reason or None)."""
        if self.class_name is not None:
            return self.class_name, {}, None
        if self.tag_to_class is None:
            return "", {}, None
        chars = str(post.get("tag_string_character", "")).split()
        classes = sorted({self.tag_to_class[t] for t in chars if t in self.tag_to_class})
        if not classes:
            return "", {}, "no-catalog-class"
        if len(classes) == 1:
            return classes[0], {}, None
        return "", {"classes": classes, "multi_class": True}, None


def post_meta(post: dict[str, Any], base_url: str, variant: str) -> dict[str, Any]:
    """What the ledger keeps about a post. ``md5`` is only set when it describes the fetched bytes."""
    meta = {
        "tags": post.get("tag_string", ""),
        "characters": post.get("tag_string_character", ""),
        "copyrights": post.get("tag_string_copyright", ""),
        "artists": post.get("tag_string_artist", ""),
        "rating": post.get("rating"),
        "score": post.get("score"),
        "created_at": post.get("created_at"),
        "page_url": f"{base_url.rstrip('/')}/posts/{post.get('id')}",
        "file_ext": post.get("file_ext"),
        "width": post.get("image_width"),
        "height": post.get("image_height"),
        "file_size": post.get("file_size"),
        "source": post.get("source"),
        "variant": variant,
    }
    if variant == "original" or post.get("large_file_url") == post.get("file_url"):
        meta["md5"] = post.get("md5")  # the downloader verifies it
    else:
        meta["post_md5"] = post.get("md5")  # the sample is another file
    return {k: v for k, v in meta.items() if v not in (None, "")}


def post_candidate(
    post: dict[str, Any], query: Query, labeller: Labeller, *, base_url: str, variant: str
) -> tuple[Candidate, str | None]:
    """The ledger row for a post, and the reason it is skipped (None when it is to be fetched).

    The post must have a valid id (:func:`post_id`); a post with another bad field becomes a row
    ``skipped`` with ``bad-record:<field>`` that holds nothing taken from the bad post but its id.
    """
    pid = post_id(post)
    if pid is None:
        raise ValueError("post_candidate needs a post with a valid id")
    field_name = bad_field(post)
    if field_name is not None:
        meta = {"page_url": f"{base_url.rstrip('/')}/posts/{pid}", "bad_field": field_name}
        return Candidate(SOURCE, str(pid), "", None, meta), f"bad-record:{field_name}"
    reason = skip_reason(post, variant)
    class_name, extra, label_skip = labeller.label(post)
    reason = reason or label_skip
    url = post.get("large_file_url" if variant == "sample" else "file_url") or post.get("file_url")
    meta = {**post_meta(post, base_url, variant), **extra}
    if query.server_terms or query.client_tags:
        meta["query"] = " ".join([*query.server_terms, *query.client_tags])
    return Candidate(SOURCE, str(pid), class_name, url, meta), reason


def plan_posts(ledger: Ledger, rows: list[tuple[Candidate, str | None]], summary: FetchSummary) -> int:
    """Plan ``(candidate, skip reason)`` rows (API posts or dump records); new rows with a skip reason
    become ``skipped`` with it (rows already in the ledger keep their status). Returns the new rows."""
    new = ledger.plan(c for c, _ in rows)
    summary.planned += new
    for cand, reason in rows:
        if reason is None:
            continue
        for item in ledger.find(cand.source, cand.source_id, cand.class_name):
            if item.status == PLANNED:
                ledger.mark(item.id, SKIPPED, reason)
                summary.add(Outcome(SKIPPED, reason))
    return new


# -- paging -----------------------------------------------------------------------------------------
@dataclass
class Cursor:
    """Listing progress of one query, kept in the ledger's meta table."""

    lowest: int | None = None  # lowest post id seen so far in the current walk
    newest: int | None = None  # newest post id seen in a finished walk (the floor of the next run)
    walk_newest: int | None = None  # newest id of the current walk
    complete: bool = False

    def stop_at(self, pid: int) -> None:
        """The consumer stopped (``--limit``) after taking post ``pid``: resume just past it."""
        if self.complete and self.newest is not None:
            self.newest = pid  # walking upwards from the floor: the floor is the last post taken
        else:
            self.lowest = pid  # walking downwards: continue below it

    @classmethod
    def load(cls, ledger: Ledger, key: str) -> Cursor:
        raw = ledger.get_meta(f"danbooru.cursor:{key}")
        return cls(**json.loads(raw)) if raw else cls()

    def save(self, ledger: Ledger, key: str) -> None:
        ledger.set_meta(f"danbooru.cursor:{key}", json.dumps(self.__dict__))


def iter_pages(client: Any, base_url: str, query: Query, cursor: Cursor) -> Iterator[list[dict[str, Any]]]:
    """Pages of posts from where ``cursor`` stopped; updates ``cursor`` as it goes.

    A first walk goes newest first (``page=b<lowest id seen>``). Once a walk finished, only the posts
    above its newest are asked for (:func:`iter_newer`).
    """

    url = f"{base_url.rstrip('/')}/posts.json"
    if cursor.complete and cursor.newest is not None:
        yield from iter_newer(client, url, query, cursor)
        return
    if cursor.complete:  # finished with nothing found: walk again from the top
        cursor.lowest, cursor.walk_newest, cursor.complete = None, None, False
    stop_at = cursor.newest  # a cursor saved by an older poke in the middle of a top-down rerun
    while True:
        params = {"tags": " ".join(query.server_terms), "limit": PAGE_SIZE}
        if cursor.lowest is not None:
            params["page"] = f"b{cursor.lowest}"
        posts = api_get(client, url, params, query)
        if not isinstance(posts, list):
            raise UserError(
                f"{url} answered {type(posts).__name__}, not a list of posts", hint="check --base-url"
            )
        valid = [p for p in posts if post_id(p) is not None]
        bad = [p for p in posts if post_id(p) is None]  # yielded too: the caller counts them as bad-record
        fresh = valid if stop_at is None else [p for p in valid if post_id(p) > stop_at]  # type: ignore[operator]
        last = not fresh or len(fresh) < len(valid)
        if fresh:
            ids = [post_id(p) for p in fresh]
            if cursor.lowest is not None and min(ids) >= cursor.lowest:  # type: ignore[type-var]
                raise FetchError(
                    "bad-cursor",
                    f"{url} answered page=b{cursor.lowest} with posts from id {min(ids)} up "  # type: ignore[type-var]
                    f"(the listing did not move below {cursor.lowest}); this query is stopped",
                )
            cursor.lowest = min(ids)  # type: ignore[type-var]
            cursor.walk_newest = max(cursor.walk_newest or 0, *ids)  # type: ignore[type-var]
        yield fresh + bad
        # Only reached when the consumer asks for more: a consumer that stops early keeps the walk open.
        if last:
            cursor.complete = True
            cursor.newest = max(cursor.newest or 0, cursor.walk_newest or 0) or None
            cursor.lowest = None
            return


def iter_newer(client: Any, url: str, query: Query, cursor: Cursor) -> Iterator[list[dict[str, Any]]]:
    """Pages of the posts above the floor ``cursor.newest``, oldest page first, each in ascending id order.

    ``page=a<id>`` answers the (up to) ``PAGE_SIZE`` posts just above ``id``; the next request starts
    above the newest of them, until a short page. Ascending order inside a page lets a consumer that
    stops early (``--limit``) keep the floor at the last post it took (:meth:`Cursor.stop_at`).
    """

    while True:
        floor = cursor.newest
        params = {"tags": " ".join(query.server_terms), "limit": PAGE_SIZE, "page": f"a{floor}"}
        posts = api_get(client, url, params, query)
        if not isinstance(posts, list):
            raise UserError(
                f"{url} answered {type(posts).__name__}, not a list of posts", hint="check --base-url"
            )
        valid = sorted((p for p in posts if post_id(p) is not None), key=post_id)  # type: ignore[arg-type]
        bad = [p for p in posts if post_id(p) is None]
        if valid and post_id(valid[0]) <= floor:  # type: ignore[operator]
            raise FetchError(
                "bad-cursor",
                f"{url} answered page=a{floor} with posts from id {post_id(valid[0])} (not above {floor}); "
                "this query is stopped",
            )
        if valid:
            cursor.newest = post_id(valid[-1])
        yield valid + bad
        if len(posts) < PAGE_SIZE:
            return


def api_get(client: Any, url: str, params: dict[str, Any], query: Query | None = None) -> Any:
    """``client.get_json`` with Danbooru's refusals turned into UserErrors that name the fix."""

    try:
        return client.get_json(url, params=params)
    except FetchError as exc:
        reason = getattr(exc, "reason", "")
        message = _error_message(getattr(exc, "response", None))
        if reason == "http-422":
            tags = " ".join(query.server_terms) if query else params.get("tags", "")
            raise UserError(
                f"Danbooru refused the query {tags!r} (HTTP 422{': ' + message if message else ''}); "
                f"anonymous and Member accounts may search at most {ANONYMOUS_TAG_LIMIT} tags at a time",
                hint="lower --tag-limit (extra tags are then filtered client-side), or log in with a Gold "
                "account (--login/--api-key) and pass --tag-limit 6",
            ) from None
        if reason in ("http-401", "http-403"):
            raise UserError(
                f"Danbooru refused the credentials ({reason}{': ' + message if message else ''})",
                hint="check DANBOORU_LOGIN / DANBOORU_API_KEY (or --login/--api-key), or run anonymously",
            ) from None
        raise


def _error_message(response: Any) -> str:
    if response is None:
        return ""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return ""
    return str(body.get("message") or body.get("error") or "")[:200] if isinstance(body, dict) else ""


def estimate_pages(count: int | None) -> int | None:
    return None if count is None else max(1, math.ceil(count / PAGE_SIZE))

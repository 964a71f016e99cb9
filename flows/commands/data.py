"""Sales data, the registry's schema and the signing key: generate, ingest, db upgrade, keys."""

from __future__ import annotations

from pathlib import Path

from flows.output import user
from storage.catalog import get_catalog


def generate(args) -> None:
    from storage.synthetic import generate_sales, parse_shift, write_sales_csv

    shifts = tuple(parse_shift(text) for text in args.shift)
    sales = generate_sales(stores=args.stores, items=args.items, start=args.start, end=args.end,
                           seed=args.seed, shifts=shifts, zero_share=args.zero_share,
                           dispersion=args.dispersion)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_sales_csv(sales, args.out)
    print(f"wrote {len(sales):,} rows ({args.stores} stores x {args.items} items, "
          f"{args.start}..{args.end}) to {args.out}")


def ingest(args) -> None:
    import datetime as dt

    from monitoring.demand import PROFILE_DAYS, profile_sales
    from storage.ingest import describe_ingest, ingest_file
    from storage.sales import load_sales, sales_date_range

    catalog = get_catalog()
    print(describe_ingest(ingest_file(catalog, args.file, replace=args.replace)))
    with catalog.session() as session:  # the stored series as they stand now, last year
        _, newest = sales_date_range(session)
        recent = load_sales(session, start=newest - dt.timedelta(days=PROFILE_DAYS - 1))
    print(f"demand: {profile_sales(recent).statement()}")


def db_upgrade(args) -> None:
    from storage.db import current_revision, upgrade

    engine = get_catalog().raw_engine()
    before = current_revision(engine)
    upgrade(engine)
    print(f"database at revision {current_revision(engine)} (was {before or 'empty'})")


def keys_init(args) -> None:
    from storage.channel import init_signing_key

    catalog = get_catalog()
    public, key_id = init_signing_key(catalog.signing_key, force=args.force)
    print(f"release signing key {key_id}: private {catalog.signing_key} (keep it here), "
          f"public {public} (give it to every device: shelfcast-device trust --public-key)")


def keys_rotate(args) -> None:
    from storage.channel import rotate_signing_key
    from storage.models import utcnow
    from storage.releases import ReleaseTarget, resign_open_releases

    catalog = get_catalog()
    target = ReleaseTarget.from_settings(catalog.settings)
    old_key = target.load_signing_key()  # refused inside the release folder, like any signing
    with catalog.unit_of_work() as session:
        public, old_id, new_id = rotate_signing_key(target.signing_key, target.root, old_key,
                                                    now=utcnow().isoformat(), by=user(args.by))
        resigned = resign_open_releases(session, target)
    print(f"release signing key {new_id} replaces {old_id}: announced in "
          f"{target.root / 'keys.json'} (signed by {old_id}; devices that trust it learn the new "
          f"key at their next sync); {len(resigned)} open release manifest(s) and the indexes "
          f"re-signed; new public key {public}")


def add_parsers(sub) -> None:
    """This module's commands on the `shelfcast` parser's subcommands `sub`."""
    p = sub.add_parser("generate", help="write generated Kaggle-schema sales to a CSV")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--stores", type=int, default=5)
    p.add_argument("--items", type=int, default=10)
    p.add_argument("--start", default="2013-01-01")
    p.add_argument("--end", default="2017-12-31")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--zero-share", type=float, default=0.0,
                   help="share of days with no sales in every series (intermittent items)")
    p.add_argument("--dispersion", type=float,
                   help="negative-binomial size: over-dispersed counts (default: Poisson)")
    p.add_argument("--shift", action="append", default=[], metavar="SPEC",
                   help="inject a shift: store=3,start=2017-06-01,factor=1.2[,item=5][,kind=promo]")
    p.set_defaults(handler=generate)

    p = sub.add_parser("ingest", help="validate a sales CSV, then load all rows or none")
    p.add_argument("file", type=Path)
    p.add_argument("--replace", action="store_true", help="overwrite stored rows that differ")
    p.set_defaults(handler=ingest)

    p = sub.add_parser("keys", help="release-signing keys")
    keys = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    k = keys.add_parser("init", help="make the Ed25519 key that signs release manifests")
    k.add_argument("--force", action="store_true", help="replace an existing key")
    k.set_defaults(handler=keys_init)
    k = keys.add_parser("rotate", help="replace the signing key: announce the new public key "
                                       "signed by the old one, re-sign the open releases")
    k.add_argument("--by", help="who rotates it (default: the OS user)")
    k.set_defaults(handler=keys_rotate)

    p = sub.add_parser("db", help="registry schema")
    db = p.add_subparsers(dest="db", required=True, metavar="ACTION")
    db.add_parser("upgrade", help="migrate the registry to the newest schema").set_defaults(
        handler=db_upgrade
    )

"""Sales data, the registry's schema and the signing key: generate, ingest, db upgrade, keys."""

from __future__ import annotations

from pathlib import Path

from flows.commands.audit import record as audit
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
    from storage.releases import ReleaseTarget

    catalog = get_catalog()
    with catalog.unit_of_work() as session:
        # refused when the key would land in the release folder, or that folder is the home
        public, key_id = ReleaseTarget.from_settings(catalog.settings).init_signing_key(
            force=args.force)
        audit(session, user(args.by), "key.init", f"release key {key_id}",
              "replaced the existing key (--force)" if args.force else None)
    print(f"release signing key {key_id}: private {catalog.signing_key} (keep it here), "
          f"public {public}; root version 1: {public.parent / 'root' / '1.root.json'} (give it "
          "to every device: shelfcast-device trust --root FILE)")


def keys_rotate(args) -> None:
    from storage.releases import ReleaseTarget, rotate_release_key

    catalog = get_catalog()
    target = ReleaseTarget.from_settings(catalog.settings)
    by = user(args.by)
    # refused at once while another change of the channel (a night, a promotion) holds its lock
    with catalog.unit_of_work() as session:
        public, old_id, new_id, version = rotate_release_key(
            session, target, by=by, root_keys=args.root_key or [],
            new_root_key=args.new_root_key, add_root_keys=args.add_root_key or [],
            root_threshold=args.root_threshold)
        audit(session, by, "key.rotate", f"release key {new_id}",
              f"replaces {old_id}; root version {version}")
    print(f"release signing key {new_id} replaces {old_id}: root version {version} names it, "
          f"signed by the root key(s) of version {version - 1}; devices walk to it at their "
          f"next sync; every open release manifest and index re-signed; new public key {public}")


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
    k.add_argument("--by", help="who makes it (default: the OS user)")
    k.set_defaults(handler=keys_init)
    k = keys.add_parser("rotate", help="replace the signing key: announce the new public key "
                                       "signed by the old one, re-sign the open releases")
    k.add_argument("--by", help="who rotates it (default: the OS user)")
    k.add_argument("--root-key", action="append", type=Path, metavar="FILE",
                   help="a root private key kept offline that signs the new root (repeat for a "
                        "threshold above 1); default: the root key beside the release key")
    k.add_argument("--new-root-key", action="store_true",
                   help="replace the root key too (the old root keys sign the new root)")
    k.add_argument("--add-root-key", action="append", type=Path, metavar="FILE",
                   help="add the root key in this private-key file (e.g. one then kept "
                        "offline) to the new root, for a threshold above 1")
    k.add_argument("--root-threshold", type=int,
                   help="root keys that must sign the next root (default: unchanged)")
    k.set_defaults(handler=keys_rotate)

    p = sub.add_parser("db", help="registry schema")
    db = p.add_subparsers(dest="db", required=True, metavar="ACTION")
    db.add_parser("upgrade", help="migrate the registry to the newest schema").set_defaults(
        handler=db_upgrade
    )

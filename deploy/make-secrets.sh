#!/bin/sh
# Writes the secret files docker-compose.yml mounts, those that are missing, into deploy/secrets/
# (git-ignored): the pseudonym secret, the key that seals recipients' webhook signing secrets,
# PostgreSQL's password and the database URL carrying it.
# An existing file is never replaced: a new pseudonym secret would change every pseudonym, and
# PostgreSQL keeps the password its data volume was initialised with.
set -eu

secrets_dir="$(dirname "$0")/secrets"
mkdir -p "$secrets_dir"
# Only you can reach the directory; the files themselves must be readable by the containers'
# users (Gallring's uid 10001, PostgreSQL's 999), to which Docker bind-mounts them as they are.
chmod 700 "$secrets_dir"

random_token() {
    python3 -c "import secrets, sys; print(secrets.token_urlsafe(int(sys.argv[1])))" "$1"
}

database_url() {
    # URL-safe tokens need no escaping inside the URL.
    printf 'postgresql+psycopg://gallring:%s@postgres:5432/gallring\n' \
        "$(cat "$secrets_dir/postgres_password")"
}

# create_unless_present FILE COMMAND…: FILE gets what COMMAND prints, unless it exists.
create_unless_present() {
    file="$secrets_dir/$1"
    shift
    if [ -e "$file" ]; then
        echo "kept    $file"
        return
    fi
    "$@" > "$file.new" # a failed command leaves no empty secret behind to be kept next time
    chmod 644 "$file.new"
    mv "$file.new" "$file"
    echo "created $file"
}

create_unless_present gallring_pseudonym_secret random_token 48
create_unless_present gallring_secret_sealing_key random_token 48
create_unless_present postgres_password random_token 32
create_unless_present gallring_database_url database_url

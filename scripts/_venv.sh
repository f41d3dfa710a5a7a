# Sourced by the other scripts: make sure .venv exists and holds this project
# with the extras named in $MC_EXTRAS, reinstalling only when pyproject.toml changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MC_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
fi
stamp="$venv/.membership_core-installed"
want="$(cat "$root/pyproject.toml" | sha256sum | cut -d' ' -f1) ${MC_EXTRAS}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$venv/bin/python" -m pip install --quiet -e "$root[${MC_EXTRAS}]"
    echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"

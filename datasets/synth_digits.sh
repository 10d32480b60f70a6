#!/usr/bin/env bash
# Synthesise an SC09-style spoken-digits set ("zero".."nine") with espeak-ng + sox.
#
# Downloads nothing (needs the Debian packages espeak-ng and sox; run as root, the script installs
# them with apt-get when missing). Output: 16 kHz mono 16-bit WAV, exactly 1 s each:
#   datasets/generated/digits/{train,val,test}/<digit>_<voice>_<i>.wav
# Licence: the generated audio is ours (espeak-ng is GPL-3, its output is not covered by it).
#
# Voices are espeak-ng accents (en-us, en-gb, en-gb-scotland, en-gb-x-rp, en-gb-x-gbclan,
# en-gb-x-gbcwmd, en-029, en-us-nyc) x voice variants (m1..m8, f1..f5, klatt, Storm, ...), taken in
# a fixed interleaved order. Each voice says every digit --reps times, each time with its own speed
# (120-200 wpm), pitch (20-80) and start offset (0-150 ms), drawn from a fixed LCG seeded by
# (voice, digit, rep): the same options always give the same files. The split is by voice - no
# voice appears in two splits: voice k goes to test when k % 10 == 9, to val when k % 10 == 8,
# else to train (with fewer than 10 voices the last two voices are test and val).
#
# Usage: datasets/synth_digits.sh [--voices N] [--reps R] [--out DIR] [--jobs J]
#   --voices N  number of voices, 3..(accents x variants) (default 30, at most 408)
#   --reps R    takes per voice and digit (default 2)
#   --out DIR   output directory (default datasets/generated/digits)
#   --jobs J    parallel synthesis jobs (default: number of CPUs)
# Size: about 32 kB per clip; the default 30 voices x 10 digits x 2 takes = 600 clips, 19 MB.
#
# Idempotent: a finished set with the same options is left alone; other options rebuild it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
voices=30
reps=2
out="$here/generated/digits"
jobs="$(nproc 2>/dev/null || echo 2)"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --voices) voices="$2"; shift 2 ;;
        --reps) reps="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e 's/^# \{0,1\}//' -e '$d'; exit 0 ;;
        *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$voices" =~ ^[0-9]+$ && "$voices" -ge 3 ]] || { echo "error: --voices must be >= 3" >&2; exit 2; }
[[ "$reps" =~ ^[0-9]+$ && "$reps" -ge 1 ]] || { echo "error: --reps must be >= 1" >&2; exit 2; }
[[ "$jobs" =~ ^[0-9]+$ && "$jobs" -ge 1 ]] || { echo "error: --jobs must be >= 1" >&2; exit 2; }

if ! command -v espeak-ng >/dev/null 2>&1 || ! command -v sox >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "digits: installing espeak-ng and sox with apt-get"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng sox >/dev/null
    else
        echo "error: needs espeak-ng and sox: sudo apt-get install espeak-ng sox" >&2
        exit 1
    fi
fi

accents=(en-us en-gb en-gb-scotland en-gb-x-rp en-029 en-us-nyc en-gb-x-gbclan en-gb-x-gbcwmd)
# Variant files of espeak-ng 1.51 (voices/!v/) that sound distinct (caleb == klatt is left out;
# an unknown variant would silently fall back to the plain accent, so they are checked below).
variants=(m1 f1 m2 f2 m3 f3 m4 f4 m5 f5 m6 m7 m8 klatt klatt2 klatt3 Storm Andy Annie Denis Gene
          Jacky Lee Tweaky adam anika antonio aunty belinda benjamin boris david ed edward grandma
          grandpa gustave iven john linda max michel norbert paul pedro quincy rob robert shelby
          steph travis victor)
max=$(( ${#accents[@]} * ${#variants[@]} ))
[[ "$voices" -le "$max" ]] || { echo "error: --voices must be <= $max" >&2; exit 2; }
digits=(zero one two three four five six seven eight nine)

params="voices=$voices reps=$reps version=2"
stamp="$out/.complete"
if [[ -f "$stamp" && "$(head -n1 "$stamp")" == "$params" ]]; then
    echo "digits: already generated ($params): $(tail -n +2 "$stamp" | wc -l) clips in $out"
    exit 0
fi
if [[ -e "$out" ]]; then
    echo "digits: rebuilding $out for $params"
    rm -rf "$out"
fi

# Voice k: accent k % A, variant k / A (so consecutive voices differ in accent).
split_of() {
    local k=$1
    if (( voices < 10 )); then
        if (( k == voices - 1 )); then echo test; elif (( k == voices - 2 )); then echo val; else echo train; fi
    elif (( k % 10 == 9 )); then echo test
    elif (( k % 10 == 8 )); then echo val
    else echo train; fi
}

# One clip: espeak-ng at 22.05 kHz -> trim silence -> 16 kHz mono 16-bit, peak -3 dBFS, start
# offset, padded/trimmed to exactly 16000 samples. -R -D: repeatable, no dither (deterministic).
synth() {
    local path=$1 voice=$2 speed=$3 pitch=$4 lead=$5 word=$6
    local tmp="$path.raw.wav"
    espeak-ng -v "$voice" -s "$speed" -p "$pitch" -w "$tmp" "$word"
    sox -R -D -V1 "$tmp" -r 16000 -c 1 -b 16 "$path.tmp.wav" \
        silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse \
        gain -n -3 pad "$lead" 1 trim 0 1
    rm -f "$tmp"
    mv "$path.tmp.wav" "$path"
}
export -f synth

# Refuse variants this espeak-ng does not have (it would quietly use the plain accent instead).
vdir="$(find /usr/lib /usr/share /usr/local -type d -path '*espeak-ng-data/voices/!v' 2>/dev/null | head -n1)"
if [[ -n "$vdir" ]]; then
    for (( k = 0; k < voices; k++ )); do
        v=${variants[k / ${#accents[@]}]}
        [[ -f "$vdir/$v" ]] || { echo "error: espeak-ng has no voice variant $v ($vdir)" >&2; exit 1; }
    done
fi

mkdir -p "$out"/{train,val,test}
joblist="$out/.jobs"
: >"$joblist"
n_accents=${#accents[@]}
for (( k = 0; k < voices; k++ )); do
    accent=${accents[k % n_accents]}
    variant=${variants[k / n_accents]}
    voice="$accent+$variant"
    vname="$accent-$variant"
    split=$(split_of "$k")
    for (( d = 0; d < 10; d++ )); do
        for (( r = 0; r < reps; r++ )); do
            # Deterministic draws: a 31-bit LCG seeded by (voice, digit, rep).
            s=$(( (k * 7919 + d * 104729 + r * 1299709 + 12345) % 2147483647 ))
            s=$(( (s * 1103515245 + 12345) % 2147483648 )); speed=$(( 120 + s % 81 ))
            s=$(( (s * 1103515245 + 12345) % 2147483648 )); pitch=$(( 20 + s % 61 ))
            s=$(( (s * 1103515245 + 12345) % 2147483648 )); lead_ms=$(( s % 151 ))
            lead=$(printf '0.%03d' "$lead_ms")
            printf '%s\0%s\0%s\0%s\0%s\0%s\0' \
                "$out/$split/${digits[d]}_${vname}_$r.wav" "$voice" "$speed" "$pitch" "$lead" \
                "${digits[d]}" >>"$joblist"
        done
    done
done
total=$(( voices * 10 * reps ))
echo "digits: synthesising $total clips ($voices voices x 10 digits x $reps takes) with $jobs jobs into $out"
start=$(date +%s.%N)
xargs -0 -n 6 -P "$jobs" bash -c 'synth "$@"' _ <"$joblist"
rm -f "$joblist"
end=$(date +%s.%N)
{
    echo "$params"
    (cd "$out" && find . -name '*.wav' | sort)
} >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"
for s in train val test; do
    printf 'digits: %-5s %5d clips, %2d voices\n' "$s" "$(find "$out/$s" -name '*.wav' | wc -l)" \
        "$(find "$out/$s" -name '*.wav' | sed -E 's/.*\/[a-z]+_(.*)_[0-9]+\.wav/\1/' | sort -u | wc -l)"
done
echo "digits: $(du -sh "$out" | cut -f1), $(awk -v a="$start" -v b="$end" -v n="$total" 'BEGIN { printf "%.1f s, %.0f clips/s", b - a, n / (b - a) }')"

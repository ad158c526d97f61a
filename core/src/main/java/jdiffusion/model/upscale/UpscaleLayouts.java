package jdiffusion.model.upscale;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The key layouts upscale models come in, renamed to one canonical set of names (BasicSR's RRDBNet names for the
 * ESRGAN family: {@code conv_first}, {@code body.i.rdbK.convJ}, {@code conv_body}, {@code conv_upU}, {@code conv_hr},
 * {@code conv_last}; SRVGGNetCompact keeps its {@code body.N}). As spandrel does, the architecture is recognised from
 * the names alone and every size is read from the shapes later.
 */
final class UpscaleLayouts {
    /** Wrappers a training script saves the state dict under (spandrel's canonicalize_state_dict), in its order. */
    private static final List<String> WRAPPERS = List.of("model_state_dict.", "state_dict.", "params_ema.",
            "params-ema.", "params.", "net.");
    /** Prefixes of the whole state dict to drop (DataParallel, GAN generator). */
    private static final List<String> COMMON_PREFIXES = List.of("module.", "netG.");

    enum Kind {
        ESRGAN_OLD("ESRGAN (old model.N layout)"),
        REAL_ESRGAN("Real-ESRGAN / BasicSR RRDBNet"),
        ESRGAN_2019("ESRGAN 2019 / BSRGAN RRDBNet"),
        COMPACT("SRVGGNetCompact");

        final String description;

        Kind(String description) {
            this.description = description;
        }

        boolean rrdb() {
            return this != COMPACT;
        }
    }

    /** A recognised layout: canonical name -> name in the file, over the tensors of the chosen wrapper only. */
    record Layout(Kind kind, Map<String, String> names) {
    }

    private UpscaleLayouts() {
    }

    /** The state dict's own names: inside a known wrapper if there is one, with common prefixes removed. */
    static Map<String, String> unwrap(Set<String> fileNames) {
        String wrapper = "";
        for (String w : WRAPPERS) {
            if (fileNames.stream().anyMatch(n -> n.startsWith(w))) {
                wrapper = w;
                break;
            }
        }
        Map<String, String> inner = new LinkedHashMap<>();
        for (String n : fileNames) {
            if (n.startsWith(wrapper)) {
                inner.put(n.substring(wrapper.length()), n);
            }
        }
        for (String p : COMMON_PREFIXES) {
            if (!inner.isEmpty() && inner.keySet().stream().allMatch(n -> n.startsWith(p))) {
                Map<String, String> stripped = new LinkedHashMap<>();
                inner.forEach((k, v) -> stripped.put(k.substring(p.length()), v));
                inner = stripped;
            }
        }
        return inner;
    }

    static Layout detect(Set<String> fileNames) {
        Map<String, String> sd = unwrap(fileNames);
        if (sd.containsKey("model.0.weight") && sd.containsKey("model.1.sub.0.RDB1.conv1.0.weight")) {
            return new Layout(Kind.ESRGAN_OLD, oldLayout(sd));
        }
        if (sd.containsKey("conv_first.weight") && sd.containsKey("body.0.rdb1.conv1.weight")) {
            return new Layout(Kind.REAL_ESRGAN, renamed(sd, List.of(
                    "(conv_first|conv_body|conv_up\\d+|conv_hr|conv_last)\\.(weight|bias)", "$1.$2",
                    "body\\.(\\d+)\\.rdb(\\d)\\.conv(\\d)\\.(weight|bias)", "body.$1.rdb$2.conv$3.$4")));
        }
        if (sd.containsKey("conv_first.weight") && sd.containsKey("RRDB_trunk.0.RDB1.conv1.weight")) {
            return new Layout(Kind.ESRGAN_2019, renamed(sd, List.of(
                    "(conv_first|conv_last)\\.(weight|bias)", "$1.$2",
                    "trunk_conv\\.(weight|bias)", "conv_body.$1",
                    "upconv(\\d+)\\.(weight|bias)", "conv_up$1.$2",
                    "HRconv\\.(weight|bias)", "conv_hr.$1",
                    "RRDB_trunk\\.(\\d+)\\.RDB(\\d)\\.conv(\\d)\\.(weight|bias)", "body.$1.rdb$2.conv$3.$4")));
        }
        if (sd.containsKey("body.0.weight") && sd.containsKey("body.1.weight")) {
            return new Layout(Kind.COMPACT, renamed(sd, List.of("body\\.(\\d+)\\.(weight|bias)", "body.$1.$2")));
        }
        List<String> some = new ArrayList<>(new TreeSet<>(sd.keySet()));
        throw new IllegalStateException("not a known upscale model (ESRGAN, Real-ESRGAN / BasicSR RRDBNet, "
                + "ESRGAN 2019 / BSRGAN, SRVGGNetCompact): tensors " + some.subList(0, Math.min(4, some.size()))
                + (some.size() > 4 ? " ..." : ""));
    }

    /** Renames by (regex, replacement) pairs; a name no rule matches is kept (and reported as unused later). */
    private static Map<String, String> renamed(Map<String, String> sd, List<String> rules) {
        Map<String, String> out = new LinkedHashMap<>();
        for (var e : sd.entrySet()) {
            String canonical = e.getKey();
            for (int i = 0; i < rules.size(); i += 2) {
                Matcher m = Pattern.compile(rules.get(i)).matcher(e.getKey());
                if (m.matches()) {
                    canonical = m.replaceFirst(rules.get(i + 1));
                    break;
                }
            }
            out.put(canonical, e.getValue());
        }
        return out;
    }

    /**
     * The 2018 ESRGAN layout: model.0 conv_first; model.1.sub.i.RDBk.convj.0 the blocks, model.1.sub.nb the trunk
     * conv; then per x2 step an upsample (no weights), conv model.3u and activation; model.(3n+2) HR conv and
     * model.(3n+4) the last conv, so n = (highest index - 4) / 3.
     */
    private static Map<String, String> oldLayout(Map<String, String> sd) {
        Pattern rdb = Pattern.compile("model\\.1\\.sub\\.(\\d+)\\.RDB(\\d)\\.conv(\\d)\\.0\\.(weight|bias)");
        Pattern top = Pattern.compile("model\\.(\\d+)\\.(weight|bias)");
        int nb = 0;
        int highest = 0;
        for (String n : sd.keySet()) {
            Matcher m = rdb.matcher(n);
            if (m.matches()) {
                nb = Math.max(nb, Integer.parseInt(m.group(1)) + 1);
            }
            Matcher t = top.matcher(n);
            if (t.matches()) {
                highest = Math.max(highest, Integer.parseInt(t.group(1)));
            }
        }
        if (highest < 4 || (highest - 4) % 3 != 0) {
            throw new IllegalStateException("old ESRGAN layout: the last conv is model." + highest
                    + ", expected model.(3n+4) for n upsampling steps");
        }
        int steps = (highest - 4) / 3;
        Map<String, String> out = new LinkedHashMap<>();
        for (var e : sd.entrySet()) {
            String k = e.getKey();
            String canonical = k;
            Matcher m = rdb.matcher(k);
            Matcher t = top.matcher(k);
            if (m.matches()) {
                canonical = "body." + m.group(1) + ".rdb" + m.group(2) + ".conv" + m.group(3) + "." + m.group(4);
            } else if (k.equals("model.1.sub." + nb + ".weight") || k.equals("model.1.sub." + nb + ".bias")) {
                canonical = "conv_body." + k.substring(k.lastIndexOf('.') + 1);
            } else if (t.matches()) {
                int i = Integer.parseInt(t.group(1));
                String kind = t.group(2);
                if (i == 0) {
                    canonical = "conv_first." + kind;
                } else if (i == 3 * steps + 2) {
                    canonical = "conv_hr." + kind;
                } else if (i == 3 * steps + 4) {
                    canonical = "conv_last." + kind;
                } else if (i % 3 == 0 && i / 3 >= 1 && i / 3 <= steps) {
                    canonical = "conv_up" + (i / 3) + "." + kind;
                }
            }
            out.put(canonical, e.getValue());
        }
        return out;
    }
}

// Matches custom property values against UserDefinedVMProperties the way
// ovirt-engine does (CustomPropertiesUtils.parsePropertiesRegex and
// VmPropertiesUtils.isValueValid): the definitions are split on ";", each
// on its first "=", and a value is valid when
// Pattern.compile(regex).matcher(value).matches().
//
// Usage: java Check.java DEFINITIONS VALUES
//   DEFINITIONS  one line, as given to engine-config -s UserDefinedVMProperties
//   VALUES       lines "name<TAB>value as UTF-16 code units in hex" (big
//                endian, 4 digits a unit: a lone surrogate arrives as it
//                is, where a UTF-8 or UTF-16 decoder would replace it)
// Prints one line per value: "match", "nomatch", "unknown" (no such
// property) or "error <exception>".

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

public class Check {
    public static void main(String[] args) throws Exception {
        String definitions = Files.readString(Paths.get(args[0]), StandardCharsets.UTF_8).strip();
        Map<String, Pattern> regexes = new HashMap<>();
        for (String property : Pattern.compile(";").split(definitions)) {
            String[] parts = property.split("=", 2);
            regexes.put(parts[0], Pattern.compile(parts.length == 1 ? "[^;]+" : parts[1]));
        }
        List<String> lines = Files.readAllLines(Paths.get(args[1]), StandardCharsets.UTF_8);
        StringBuilder out = new StringBuilder();
        for (String line : lines) {
            String[] fields = line.split("\t", 2);
            byte[] bytes = HexFormat.of().parseHex(fields[1]);
            char[] units = new char[bytes.length / 2];
            for (int i = 0; i < units.length; i++) {
                units[i] = (char) (((bytes[2 * i] & 0xff) << 8) | (bytes[2 * i + 1] & 0xff));
            }
            String value = new String(units);
            Pattern pattern = regexes.get(fields[0]);
            String result;
            if (pattern == null) {
                result = "unknown";
            } else {
                try {
                    result = pattern.matcher(value).matches() ? "match" : "nomatch";
                } catch (Throwable t) {
                    result = "error " + t.getClass().getName();
                }
            }
            out.append(result).append('\n');
        }
        System.out.print(out);
    }
}

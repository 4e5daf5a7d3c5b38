// Which custom properties Engine's VM dialog shows as a drop-down, and
// with which values, as ovirt-engine's KeyValueModel.setKeyValueString
// (frontend/webadmin/modules/uicommonweb/.../models/vms/key_value/
// KeyValueModel.java) decides: a property whose regex contains
// ^(a|b|...)$ (RegexValidation with Regex.isMatch, a find) gets a list
// of the values between "^(" and ")$", split on "|"; any other a text
// field.
//
// Usage: java DropDown.java DEFINITIONS
//   DEFINITIONS  one line, as given to engine-config -s UserDefinedVMProperties
// Prints one line per property: "name<TAB>dropdown<TAB>v1,v2,..." or
// "name<TAB>text".

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.regex.Pattern;

public class DropDown {
    // KeyValueModel.setKeyValueString, verbatim.
    static final String DROP_DOWN = "\\^\\((([a-zA-Z0-9_]+[|]+)*)[a-zA-Z0-9_]+\\)\\$";

    public static void main(String[] args) throws Exception {
        String definitions = Files.readString(Paths.get(args[0]), StandardCharsets.UTF_8).strip();
        StringBuilder out = new StringBuilder();
        for (String line : definitions.split(";")) {
            String[] split = line.split("=", 2);
            String regex = split[1];
            out.append(split[0]).append('\t');
            if (Pattern.compile(DROP_DOWN).matcher(regex).find()) {
                String[] values = regex.substring(2, regex.length() - 2).split("\\|");
                out.append("dropdown\t").append(String.join(",", values));
            } else {
                out.append("text");
            }
            out.append('\n');
        }
        System.out.print(out);
    }
}

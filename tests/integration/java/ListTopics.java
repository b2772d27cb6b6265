// Kafka's own Java AdminClient, configured from a client properties file only: prints the
// topics it may see, one a line. Run in source-file mode: java -cp '<kafka libs>/*' ListTopics.java FILE
import java.io.FileReader;
import java.util.Properties;
import java.util.TreeSet;
import org.apache.kafka.clients.admin.Admin;

public class ListTopics {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        try (FileReader in = new FileReader(args[0])) {
            props.load(in);
        }
        props.put("default.api.timeout.ms", "60000");
        props.put("request.timeout.ms", "30000");
        try (Admin admin = Admin.create(props)) {
            for (String topic : new TreeSet<>(admin.listTopics().names().get())) {
                System.out.println(topic);
            }
        }
    }
}

// Creates (or updates) the SCRAM-SHA-256 and SCRAM-SHA-512 credentials of one user on a running
// broker, through the Admin API. Run by scripts/services/kafka.sh in secure mode as a single-file
// source program: java -cp '<kafka jars>/*' KafkaScramUsers.java BOOTSTRAP USER PASSWORD_FILE
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;

public class KafkaScramUsers {
    public static void main(String[] args) throws Exception {
        String password = Files.readString(Path.of(args[2])).strip();
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        try (Admin admin = Admin.create(props)) {
            // One mechanism per request: the broker refuses two changes of one user at once.
            for (ScramMechanism mechanism : List.of(ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)) {
                admin.alterUserScramCredentials(List.of(new UserScramCredentialUpsertion(
                        args[1], new ScramCredentialInfo(mechanism, 8192), password)))
                    .all().get(60, TimeUnit.SECONDS);
            }
        }
        System.out.println("SCRAM credentials of " + args[1] + " in place");
    }
}

package synth

// Names and places. Family names carry relative weights so that a few are
// frequent and most are not; given names are drawn uniformly by gender.
// Spellings keep their diacritics (Müller, Nguyễn, Zoë, José) so that
// accent-insensitive string search has work to do.

type weighted struct {
	name   string
	weight int
}

// FrequentFamily is the most frequent family name of every population
// (about 2.5 % of patients); no other family name starts with it, even
// accent- and case-insensitively, so a string search for it on
// Patient.family finds exactly the patients named so.
const FrequentFamily = "Smith"

// RareFamily is carried by exactly the patients whose index is a multiple
// of RareEvery (patient 0, 10000, 20000, ...), so a population of n
// patients holds ⌈n/RareEvery⌉ of them; no other family name starts with
// it.
const RareFamily = "Brzęczyszczykiewicz"

// RareEvery spaces the patients named RareFamily.
const RareEvery = 10000

var familyNames = []weighted{
	// English, Irish, Scottish
	{"Smith", 30}, {"Johnson", 18}, {"Williams", 16}, {"Brown", 16}, {"Jones", 14},
	{"Taylor", 12}, {"Wilson", 10}, {"Thompson", 9}, {"Walker", 8}, {"Clarke", 8},
	{"Robinson", 7}, {"Evans", 7}, {"Hughes", 6}, {"Murphy", 6}, {"O'Brien", 6},
	{"Kelly", 5}, {"MacLeod", 3},
	// German, Swiss, Austrian
	{"Müller", 14}, {"Schmidt", 12}, {"Schneider", 10}, {"Fischer", 9}, {"Weber", 8},
	{"Meyer", 8}, {"Wagner", 7}, {"Becker", 6}, {"Schäfer", 5}, {"Köhler", 4}, {"Groß", 3},
	// French
	{"Bernard", 8}, {"Dubois", 7}, {"Moreau", 6}, {"Laurent", 6}, {"Lefèvre", 5},
	{"Girard", 5}, {"Rousseau", 4}, {"Bonnet", 4}, {"François", 3},
	// Spanish, Portuguese, Latin American
	{"García", 14}, {"Rodríguez", 12}, {"González", 10}, {"López", 10}, {"Martínez", 10},
	{"Fernández", 9}, {"Pérez", 8}, {"Sánchez", 8}, {"Hernández", 7}, {"Gómez", 6},
	{"Díaz", 6}, {"Jiménez", 5}, {"Muñoz", 5}, {"Álvarez", 5}, {"Silva", 10},
	{"Santos", 9}, {"Oliveira", 8}, {"Souza", 7}, {"Gonçalves", 4}, {"Araújo", 4},
	{"Conceição", 3},
	// Italian
	{"Rossi", 8}, {"Russo", 6}, {"Ferrari", 6}, {"Esposito", 6}, {"Bianchi", 5},
	{"Romano", 5}, {"Colombo", 4}, {"Ricci", 4}, {"De Luca", 3},
	// Central and Eastern European
	{"Nowak", 7}, {"Kowalski", 6}, {"Wiśniewski", 4}, {"Wójcik", 4}, {"Kowalczyk", 4},
	{"Lewandowski", 4}, {"Dvořák", 3}, {"Novák", 3}, {"Svoboda", 3}, {"Horváth", 3},
	{"Kovács", 3}, {"Szabó", 3}, {"Nagy", 3}, {"Ivanov", 4}, {"Popescu", 3},
	// Nordic, Dutch
	{"Hansen", 5}, {"Johansson", 5}, {"Nielsen", 5}, {"Andersson", 5}, {"Jørgensen", 3},
	{"Ødegård", 2}, {"Björk", 2}, {"Lindqvist", 3}, {"Virtanen", 3}, {"Korhonen", 3},
	{"Jansen", 4}, {"de Vries", 4}, {"van den Berg", 3}, {"Bakker", 3}, {"Visser", 3},
	// Greek, Turkish, Middle Eastern
	{"Papadopoulos", 4}, {"Nikolaidis", 2}, {"Yılmaz", 5}, {"Kaya", 4}, {"Demir", 4},
	{"Çelik", 3}, {"Şahin", 3}, {"Haddad", 4}, {"Khoury", 3}, {"Mansour", 3},
	{"Al-Sayed", 4}, {"Hosseini", 3}, {"Ahmadi", 3}, {"Cohen", 4}, {"Levi", 3},
	// South Asian
	{"Patel", 10}, {"Singh", 9}, {"Sharma", 8}, {"Kumar", 8}, {"Gupta", 5},
	{"Reddy", 4}, {"Iyer", 3}, {"Nair", 3}, {"Das", 3},
	// East and South-East Asian
	{"Nguyễn", 16}, {"Trần", 8}, {"Lê", 7}, {"Phạm", 6}, {"Hoàng", 4},
	{"Huỳnh", 4}, {"Vũ", 3}, {"Đặng", 3}, {"Bùi", 3}, {"Wang", 10},
	{"Li", 10}, {"Zhang", 9}, {"Chen", 8}, {"Liu", 7}, {"Yang", 5},
	{"Huang", 5}, {"Zhao", 4}, {"Zhou", 4}, {"Satō", 5}, {"Suzuki", 5},
	{"Takahashi", 4}, {"Tanaka", 4}, {"Watanabe", 3}, {"Itō", 3}, {"Yamamoto", 3},
	{"Kim", 9}, {"Park", 6}, {"Choi", 4}, {"Jung", 3},
	// African
	{"Okafor", 4}, {"Adeyemi", 4}, {"Mensah", 4}, {"Okonkwo", 3}, {"Mwangi", 3},
	{"Diallo", 3}, {"Traoré", 3}, {"Nkosi", 3}, {"Kamau", 2},
}

var femaleNames = []string{
	"Mary", "Elizabeth", "Sarah", "Jennifer", "Emma", "Olivia", "Sophia", "Zoë",
	"Chloé", "Renée", "Léa", "Noémie", "Camille", "Anna", "Hannah", "Lena",
	"Jülide", "Ingrid", "Åsa", "Siobhán", "Aoife", "María", "Sofía", "Lucía",
	"Ana", "Beatriz", "Inês", "Joana", "Chiara", "Giulia", "Eleni", "Zofia",
	"Małgorzata", "Agnieszka", "Katarzyna", "Dóra", "Réka", "Mei", "Xiu",
	"Yuki", "Sakura", "Ji-woo", "Seo-yeon", "Thảo", "Linh", "Ngọc", "Priya",
	"Ananya", "Fatima", "Aisha", "Leyla", "Zeynep", "Elif", "Amara",
	"Chiamaka", "Wanjiru", "Abena", "Noa", "Maja", "Freya",
}

var maleNames = []string{
	"James", "John", "Robert", "Michael", "William", "David", "Thomas", "Daniel",
	"Liam", "Seán", "José", "Juan", "Carlos", "Luis", "Andrés", "Ángel",
	"Sebastián", "Matías", "João", "Pedro", "André", "François", "Jean",
	"Pierre", "Jérôme", "Jürgen", "Lukas", "Maximilian", "Søren", "Björn",
	"Lars", "Mikael", "Łukasz", "Piotr", "Krzysztof", "Tomáš", "Jiří",
	"Giuseppe", "Marco", "Nikos", "Dimitrios", "Ivan", "Wei", "Hao",
	"Hiroshi", "Takumi", "Min-jun", "Minh", "Quang", "Đức", "Raj", "Arjun",
	"Mohammed", "Ahmed", "Omar", "Mehmet", "Emre", "Chinedu", "Kwame",
	"Oluwaseun",
}

// city is a place patients live in, with the formats of its addresses
// and phone numbers. In patterns '#' is a digit and 'A' a capital letter.
type city struct {
	name, district, state, country string
	postal, phone                  string
	offset                         int // UTC offset in seconds (standard time; DST is ignored)
	numberFirst                    bool
	streets                        []string
	weight                         int
	hospital                       string // name of the city's organization
}

var cities = []city{
	{name: "Boston", state: "MA", country: "US", postal: "021##", phone: "+1 617-555-####", offset: -5 * 3600, numberFirst: true, weight: 10,
		streets: []string{"Beacon Street", "Commonwealth Avenue", "Tremont Street", "Elm Street", "Main Street"}, hospital: "Synth Harbor Medical Center"},
	{name: "Chicago", state: "IL", country: "US", postal: "606##", phone: "+1 312-555-####", offset: -6 * 3600, numberFirst: true, weight: 10,
		streets: []string{"Michigan Avenue", "State Street", "Halsted Street", "Oak Street", "Clark Street"}, hospital: "Synth Lakeshore Hospital"},
	{name: "Houston", state: "TX", country: "US", postal: "770##", phone: "+1 713-555-####", offset: -6 * 3600, numberFirst: true, weight: 8,
		streets: []string{"Westheimer Road", "Main Street", "Bellaire Boulevard", "Kirby Drive"}, hospital: "Synth Bayou Health"},
	{name: "Toronto", state: "ON", country: "CA", postal: "M#A #A#", phone: "+1 416-555-####", offset: -5 * 3600, numberFirst: true, weight: 6,
		streets: []string{"Yonge Street", "Queen Street West", "Bloor Street", "Spadina Avenue"}, hospital: "Synth Lakeview General"},
	{name: "São Paulo", state: "SP", country: "BR", postal: "0####-###", phone: "+55 11 9####-####", offset: -3 * 3600, weight: 6,
		streets: []string{"Rua Augusta", "Avenida Paulista", "Rua da Consolação", "Rua Oscar Freire"}, hospital: "Hospital Sintético São Paulo"},
	{name: "London", country: "GB", postal: "SE# #AA", phone: "+44 20 7946 0###", offset: 0, numberFirst: true, weight: 8,
		streets: []string{"High Street", "Baker Street", "Old Kent Road", "Camberwell Grove"}, hospital: "Synth Thames NHS Trust"},
	{name: "Berlin", country: "DE", postal: "1####", phone: "+49 30 #######", offset: 3600, weight: 7,
		streets: []string{"Hauptstraße", "Friedrichstraße", "Kastanienallee", "Schönhauser Allee", "Müllerstraße"}, hospital: "Klinikum Synth Berlin"},
	{name: "München", state: "BY", country: "DE", postal: "80###", phone: "+49 89 #######", offset: 3600, weight: 5,
		streets: []string{"Leopoldstraße", "Maximilianstraße", "Sonnenstraße", "Türkenstraße"}, hospital: "Synth Klinikum München"},
	{name: "Zürich", country: "CH", postal: "80##", phone: "+41 44 ### ## ##", offset: 3600, weight: 4,
		streets: []string{"Bahnhofstrasse", "Seefeldstrasse", "Langstrasse", "Universitätstrasse"}, hospital: "Synth Spital Zürich"},
	{name: "Paris", country: "FR", postal: "750##", phone: "+33 1 ## ## ## ##", offset: 3600, numberFirst: true, weight: 7,
		streets: []string{"rue de Rivoli", "boulevard Saint-Germain", "rue de la Roquette", "avenue de Clichy"}, hospital: "Hôpital Synthétique de Paris"},
	{name: "Madrid", country: "ES", postal: "280##", phone: "+34 91 ### ## ##", offset: 3600, weight: 6,
		streets: []string{"Calle de Alcalá", "Gran Vía", "Calle Mayor", "Calle de Atocha"}, hospital: "Hospital Sintético de Madrid"},
	{name: "Kraków", country: "PL", postal: "3#-###", phone: "+48 12 ### ## ##", offset: 3600, weight: 4,
		streets: []string{"ulica Floriańska", "ulica Grodzka", "ulica Długa", "ulica Karmelicka"}, hospital: "Szpital Syntetyczny w Krakowie"},
	{name: "Istanbul", country: "TR", postal: "34###", phone: "+90 212 ### ## ##", offset: 3 * 3600, weight: 4,
		streets: []string{"İstiklal Caddesi", "Bağdat Caddesi", "Halaskargazi Caddesi"}, hospital: "Sentetik İstanbul Hastanesi"},
	{name: "Mumbai", state: "MH", country: "IN", postal: "4000##", phone: "+91 22 #### ####", offset: 5*3600 + 1800, numberFirst: true, weight: 5,
		streets: []string{"Marine Drive", "Linking Road", "Hill Road", "Station Road"}, hospital: "Synth Arabian Sea Hospital"},
	{name: "Hồ Chí Minh", district: "Quận 1", country: "VN", postal: "700000", phone: "+84 28 #### ####", offset: 7 * 3600, numberFirst: true, weight: 5,
		streets: []string{"Đường Lê Lợi", "Đường Nguyễn Huệ", "Đường Đồng Khởi", "Đường Hai Bà Trưng"}, hospital: "Bệnh viện Tổng hợp Synth"},
	{name: "Lagos", state: "LA", country: "NG", postal: "1#####", phone: "+234 1 ### ####", offset: 3600, numberFirst: true, weight: 4,
		streets: []string{"Awolowo Road", "Adeola Odeku Street", "Herbert Macaulay Way"}, hospital: "Synth Lagoon Teaching Hospital"},
}

// Practitioners per city's organization; the shared set has
// len(cities)*practitionersPerCity practitioners.
const practitionersPerCity = 8

var (
	familyTotal, cityTotal int
	familyCum, cityCum     []int // cumulative weights
)

func init() {
	familyCum, familyTotal = cumulate(len(familyNames), func(i int) int { return familyNames[i].weight })
	cityCum, cityTotal = cumulate(len(cities), func(i int) int { return cities[i].weight })
}

func cumulate(n int, weight func(int) int) ([]int, int) {
	cum := make([]int, n)
	total := 0
	for i := range cum {
		total += weight(i)
		cum[i] = total
	}
	return cum, total
}

// pick returns the index whose cumulative weight first exceeds x, x in
// [0, total).
func pick(cum []int, x int) int {
	lo, hi := 0, len(cum)
	for lo < hi {
		mid := (lo + hi) / 2
		if cum[mid] > x {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}
